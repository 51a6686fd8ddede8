"""A corpus of bad inputs, each fed to every command that reads that kind of input.

Every case must end with exit code 2, one line on stderr and nothing written
where the command would have written its output.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from PIL import Image

from conftest import assert_usage_error


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
    graph = helper.make_graph([helper.make_node("Identity", ["z"], ["x"])], "plain",
                              [helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(root / "plain.onnx"))
    return {"truncated onnx": root / "cut.onnx", "non-onnx file": root / "text.onnx",
            "onnx that is not a gantools generator": root / "plain.onnx", "missing onnx": root / "none.onnx",
            "a folder named .onnx": _folder(root, "dir.onnx", {})}


DATA_COMMANDS = {
    "train": lambda src, out: ["train", "--data", src, "--out", out / "run", "--steps", 2],
    "score": lambda src, out: ["score", src, "--real", "digits", "--metrics", "kid", "--extractor", "raw",
                               "--json", out / "s.json"],
    "score --real": lambda src, out: ["score", "digits", "--real", src, "--metrics", "kid", "--extractor", "raw",
                                      "--json", out / "s.json"],
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
