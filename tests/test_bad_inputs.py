"""A corpus of bad inputs, each fed to every command that reads that kind of input.

Every case must end with exit code 2, one line on stderr and nothing written
where the command would have written its output.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import assert_usage_error
from PIL import Image


def _folder(root, name, files):
    folder = root / name
    folder.mkdir()
    for fname, content in files.items():
        if isinstance(content, np.ndarray):
            Image.fromarray(content).save(folder / fname)
        else:
            (folder / fname).write_bytes(content)
    return folder


def _image(seed, size=8):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _png_bomb() -> bytes:
    """A PNG whose header claims 10^10 pixels (a decompression bomb, as Pillow calls it)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")
    )


def _data_corpus(root) -> dict:
    """Bad data sources: {name: path}."""
    good_png = Image.fromarray(_image(0))
    import io

    buf = io.BytesIO()
    good_png.save(buf, format="PNG")
    png = buf.getvalue()
    corpus = {
        "empty folder": _folder(root, "empty", {}),
        "text file named .png": _folder(root, "text", {"0.png": _image(1), "1.png": _image(2), "x.png": b"hello"}),
        "truncated png": _folder(root, "cut", {"0.png": _image(1), "1.png": png[: len(png) // 2]}),
        "mixed sizes": _folder(root, "mixed", {"0.png": _image(1), "1.png": _image(2, 12)}),
        "a single image file": root / "one.png",
        "folder with one image": _folder(root, "lone", {"0.png": _image(1)}),
        "png claiming 100000x100000 pixels": _folder(root, "bomb", {"0.png": _image(1), "1.png": _png_bomb()}),
        "missing path": root / "nowhere" / "data.npz",
    }
    good_png.save(root / "one.png")
    arrays = {
        "npz without an image key": dict(a=np.zeros((4, 8, 8), np.uint8), b=np.zeros(4)),
        "npz of wrong rank": dict(x=np.zeros((2, 3, 4, 5, 6), np.uint8)),
        "npz of strings": dict(x=np.array([["a", "b"], ["c", "d"]])),
        "npz of length 0": dict(x=np.zeros((0, 8, 8), np.uint8)),
        "npz with NaN": dict(x=np.full((4, 2), np.nan, np.float32)),
        "npz with Inf images": dict(x=np.full((4, 8, 8), np.inf, np.float32)),
        "npz of vectors of length 0": dict(x=np.zeros((5, 0), np.float32)),
        "npz of 0x0 images": dict(x=np.zeros((5, 0, 0), np.uint8)),
    }
    for i, (name, content) in enumerate(arrays.items()):
        np.savez(root / f"a{i}.npz", **content)
        corpus[name] = root / f"a{i}.npz"
    (root / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    corpus["corrupt npz"] = root / "junk.npz"
    header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">III", 4, 5, 5)
    (root / "bad-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04" + header[4:] + bytes(100))
    corpus["IDX with a bad magic number"] = root / "bad-images-idx3-ubyte"
    (root / "short-images-idx3-ubyte").write_bytes(header + bytes(30))
    corpus["IDX shorter than its header says"] = root / "short-images-idx3-ubyte"
    return corpus


def _model_corpus(root, exported) -> dict:
    """Bad generator files: {name: path}."""
    import onnx
    from onnx import helper

    raw = exported["ring"].read_bytes()
    (root / "cut.onnx").write_bytes(raw[: len(raw) // 3])
    (root / "text.onnx").write_text("not a model")
    graph = helper.make_graph(
        [helper.make_node("Identity", ["z"], ["x"])],
        "plain",
        [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(root / "plain.onnx"))
    tampered = {
        "latent_dim that is not a number": {"latent_dim": "banana"},
        "sample_shape other than the graph's output": {"sample_shape": "[2, 9]"},
        "sample_shape of another size": {"sample_shape": "[3]"},
        "an unknown kind": {"kind": "video"},
    }
    corpus = {
        "truncated onnx": root / "cut.onnx",
        "non-onnx file": root / "text.onnx",
        "onnx that is not a gantools generator": root / "plain.onnx",
        "missing onnx": root / "none.onnx",
        "a folder named .onnx": _folder(root, "dir.onnx", {}),
        "zero-byte onnx": root / "zero.onnx",
    }
    (root / "zero.onnx").write_bytes(b"")
    for i, (name, changes) in enumerate(tampered.items()):
        model = onnx.load(str(exported["ring"]))
        for prop in model.metadata_props:
            prop.value = changes.get(prop.key, prop.value)
        onnx.save(model, str(root / f"tampered{i}.onnx"))
        corpus["generator whose metadata has " + name] = root / f"tampered{i}.onnx"
    return corpus


DATA_COMMANDS = {
    "train": lambda src, out: ["train", "--data", src, "--out", out / "run", "--steps", 2],
    "score": lambda src, out: [
        "score",
        src,
        "--real",
        "digits",
        "--metrics",
        "kid",
        "--extractor",
        "raw",
        "--json",
        out / "s.json",
    ],
    "score --real": lambda src, out: [
        "score",
        "digits",
        "--real",
        src,
        "--metrics",
        "kid",
        "--extractor",
        "raw",
        "--json",
        out / "s.json",
    ],
    "stats": lambda src, out: ["stats", src, "-o", out / "s.npz", "--extractor", "raw"],
    "train-classifier": lambda src, out: ["train-classifier", "--data", src, "-o", out / "c.onnx", "--epochs", 1],
}
MODEL_COMMANDS = {
    "generate": lambda m, out: ["generate", m, "-n", 4, "-o", out / "x.npz"],
    "score": lambda m, out: ["score", m, "--real", "ring", "--metrics", "modes", "--json", out / "s.json"],
    "info": lambda m, out: ["info", m],
    "report --model": lambda m, out: ["report", "RUN", "-o", out / "r.html", "--model", m],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _data_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_bad_data_gives_one_line_and_no_output(cli, corpus, command, tmp_path):
    for name, path in corpus.items():
        out = tmp_path / name.replace(" ", "_")
        out.mkdir()
        result = cli(*DATA_COMMANDS[command](path, out), "-q")
        assert_usage_error(result)
        assert list(out.iterdir()) == [], (command, name)


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_bad_models_give_one_line_and_no_output(cli, exported, runs, command, tmp_path):
    models = _model_corpus(tmp_path, exported)
    for name, path in models.items():
        out = tmp_path / ("out_" + name.replace(" ", "_"))
        out.mkdir()
        args = [runs["ring"] if a == "RUN" else a for a in MODEL_COMMANDS[command](path, out)]
        assert_usage_error(cli(*args))
        assert list(out.iterdir()) == [], (command, name)


def _stats_corpus(root) -> dict:
    """Bad reference statistics: {name: path}."""
    arrays = {
        "mu and sigma of other sizes": dict(mu=np.zeros(3), sigma=np.eye(2)),
        "sigma that is not square": dict(mu=np.zeros(2), sigma=np.zeros((2, 3))),
        "mu and sigma of strings": dict(mu=np.array(["a", "b"]), sigma=np.array([["a", "b"], ["c", "d"]])),
        "negative variances": dict(mu=np.zeros(2), sigma=-np.eye(2)),
        "Inf in sigma": dict(mu=np.zeros(2), sigma=np.array([[1.0, np.inf], [np.inf, 1.0]])),
        "scalars": dict(mu=np.float64(1.0), sigma=np.float64(1.0)),
        "statistics of another extractor": dict(mu=np.zeros(2), sigma=np.eye(2), extractor=np.array("classifier:x")),
    }
    corpus = {}
    for i, (name, content) in enumerate(arrays.items()):
        np.savez(root / f"s{i}.npz", **content)
        corpus[name] = root / f"s{i}.npz"
    objects = np.empty(2, object)
    np.savez(root / "objects.npz", mu=objects, sigma=objects)  # loading it would need pickle
    (root / "cut.npz").write_bytes((root / "s0.npz").read_bytes()[:100])
    return {**corpus, "object arrays (pickle)": root / "objects.npz", "truncated npz": root / "cut.npz"}


def test_bad_reference_statistics_give_one_line_and_no_output(cli, tmp_path):
    for name, path in _stats_corpus(tmp_path).items():
        out = tmp_path / ("out_" + name.replace(" ", "_"))
        out.mkdir()
        assert_usage_error(cli("score", "grid", "--real", path, "--metrics", "fid", "--json", out / "s.json", "-q"))
        assert list(out.iterdir()) == [], name


def _checkpoint_corpus(root, run) -> dict:
    """Bad checkpoint files, made from a real one: {name: path}."""
    import torch

    from gantools.checkpoint import latest_checkpoint

    good = latest_checkpoint(run)
    state = torch.load(good, weights_only=True)
    corpus = {"zero bytes": b"", "a text file": b"hello", "truncated": good.read_bytes()[:1000]}
    for name, content in corpus.items():
        (root / name).write_bytes(content)
    edits = {
        "a torch file of another program": {"a": 1},
        "weights of another shape": {
            **state,
            **{key: {k: v.reshape(-1)[:1] for k, v in state[key].items()} for key in ("generator", "generator_ema")},
        },
        "a config without latent_dim": {
            **state,
            "config": {k: v for k, v in state["config"].items() if k != "latent_dim"},
        },
        "an unknown model": {**state, "config": {**state["config"], "model": "transformer"}},
        "no optimiser state": {k: v for k, v in state.items() if k != "opt_g"},
    }
    for name, content in edits.items():
        torch.save(content, root / name)
    return {name: root / name for name in [*corpus, *edits]}


def test_bad_checkpoints_give_one_line_and_no_output(cli, runs, tmp_path):
    import shutil

    for name, path in _checkpoint_corpus(tmp_path, runs["ring"]).items():
        out = tmp_path / ("out_" + name.replace(" ", "_"))
        out.mkdir()
        if name != "no optimiser state":  # export reads the weights only
            assert_usage_error(cli("export", path, "-o", out / "g.onnx"))
        if "config" in name or "model" in name:  # a resumed run is built from its config.json
            continue
        run = out / "run"  # a run whose only checkpoint is this file
        (run / "checkpoints").mkdir(parents=True)
        shutil.copy(runs["ring"] / "config.json", run / "config.json")
        shutil.copy(path, run / "checkpoints" / "step_0000006.pt")
        before = sorted(p.relative_to(run) for p in run.rglob("*"))
        assert_usage_error(cli("train", "--out", run, "--resume", "-q"))
        assert sorted(p.relative_to(run) for p in run.rglob("*")) == before, name
        assert sorted(p.name for p in out.iterdir()) == ["run"], name


@pytest.mark.parametrize("config", ["{not json", "[1, 2]", ""])
def test_a_damaged_run_config_is_named(cli, runs, tmp_path, config):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["ring"], run)
    (run / "config.json").write_text(config)
    assert_usage_error(cli("train", "--out", run, "--resume", "-q"), "config.json", "damaged")
    assert_usage_error(cli("report", run, "-o", tmp_path / "r.html"), "config.json", "damaged")
    assert not (tmp_path / "r.html").exists()


def _options_corpus(root, exported) -> dict:
    """Bad option values and combinations: {name: (arguments, what the message must name)}."""
    g, ring = exported["dcgan"], exported["ring"]
    (root / "a-file").write_text("x")
    np.savez(root / "pts.npz", x=np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32))
    return {
        "generate -o with a file suffix": (["generate", g, "-n", 4, "-o", "OUT/x.npy"], ".npz"),
        "generate --resume with --overwrite": (
            ["generate", g, "-n", 4, "-o", "OUT/x", "--resume", "--overwrite"],
            "--overwrite",
        ),
        "generate more than the disk holds": (["generate", g, "-n", 10**15, "-o", "OUT/x.npz"], "free"),
        "generate -o under a file": (["generate", g, "-n", 4, "-o", root / "a-file" / "x.npz"], "a-file"),
        "score --max with NaN": (
            ["score", "ring", "--real", "ring", "--max", "fid=nan", "--json", "OUT/s.json"],
            "not a number",
        ),
        "score --bootstrap without fid or kid": (
            ["score", "ring", "--real", ring, "--metrics", "modes", "--bootstrap", 10, "--json", "OUT/s.json"],
            "--bootstrap",
        ),
        "score --json under a file": (
            ["score", "ring", "--real", "ring", "--json", root / "a-file" / "s.json"],
            "a-file",
        ),
        "stats -o under a file": (["stats", "ring", "-o", root / "a-file" / "s.npz"], "a-file"),
        "train --g-norm for an mlp": (["train", "--data", "ring", "--out", "OUT/r", "--g-norm", "batch"], "--g-norm"),
        "train --levels for points": (["train", "--data", "ring", "--out", "OUT/r", "--levels", 17], "--levels"),
        "train --augment for points": (["train", "--data", "ring", "--out", "OUT/r", "--augment", 0.5], "--augment"),
        "train --augment above 1": (["train", "--data", "digits", "--out", "OUT/r", "--augment", 1.5], "--augment"),
        "train --r1-final without --r1": (
            ["train", "--data", root / "pts.npz", "--out", "OUT/r", "--r1", 0, "--r1-final", 0.1],
            "--r1",
        ),
        "train --r1-every without --r1": (
            ["train", "--data", "ring", "--out", "OUT/r", "--r1", 0, "--r1-every", 4],
            "--r1-every",
        ),
        "train --r1-every 0": (["train", "--data", "ring", "--out", "OUT/r", "--r1-every", 0], "--r1-every"),
        "train --lr inf": (["train", "--data", "ring", "--out", "OUT/r", "--lr", "inf"], "--lr"),
        "train --gp-weight inf": (["train", "--data", "ring", "--out", "OUT/r", "--gp-weight", "inf"], "--gp-weight"),
        "train more memory than there is": (
            ["train", "--data", "ring", "--out", "OUT/r", "--batch-size", 10**12, "--steps", 1],
            "out of memory",
        ),
        "train --out under a file": (["train", "--data", "ring", "--out", root / "a-file" / "r"], "a-file"),
        "export -o under a file": (["export", "RUN", "-o", root / "a-file" / "g.onnx"], "a-file"),
        "report -o under a file": (["report", "RUN", "-o", root / "a-file" / "r.html"], "a-file"),
        "info of a folder": (["info", root], "folder"),
        "cache in a file": (["cache"], "GANTOOLS_CACHE"),
    }


def test_bad_options_give_one_line_and_no_output(cli, exported, runs, tmp_path, monkeypatch):
    corpus = _options_corpus(tmp_path, exported)
    for name, (args, needle) in corpus.items():
        out = tmp_path / ("out_" + name.replace(" ", "_"))
        out.mkdir()
        args = [runs["ring"] if a == "RUN" else out / a[4:] if str(a).startswith("OUT/") else a for a in args]
        with monkeypatch.context() as env:
            if name == "cache in a file":
                env.setenv("GANTOOLS_CACHE", str(tmp_path / "a-file"))
            assert_usage_error(
                cli(*args, *(["-q"] if args[0] in ("train", "generate", "score", "stats") else [])), needle
            )
        assert list(out.iterdir()) == [], name
