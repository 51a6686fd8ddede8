import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_usage_error
from PIL import Image

COMMANDS = ["train", "export", "info", "generate"]


@pytest.mark.parametrize("command", [[], *[[c] for c in COMMANDS]])
def test_every_help_works(cli, command):
    code, out, err = cli(*command, "--help")
    assert code == 0 and "Usage:" in out and err == ""


def test_help_does_not_import_torch_onnxruntime_or_the_training_loop():
    probe = (
        "import sys\nfrom gantools.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'onnxruntime', 'onnx', 'numpy', 'gantools.train')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_python_dash_m_works():
    done = subprocess.run([sys.executable, "-m", "gantools", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "gantools" in done.stdout


def test_train_export_info_generate_end_to_end(cli, tmp_path):
    run, onnx_path = tmp_path / "run", tmp_path / "m.onnx"
    code, out, _ = cli("train", "--data", "ring", "--steps", "3", "--out", run, "-q")
    assert code == 0 and "step_0000003.pt" in out
    code, out, _ = cli("export", run, "-o", onnx_path)
    assert code == 0 and "max |torch - onnxruntime|" in out and (tmp_path / "m.disc.onnx").exists()
    code, out, _ = cli("info", onnx_path, "--json")
    desc = json.loads(out)
    assert code == 0 and desc["provider"] == "cpu" and desc["metadata"]["role"] == "generator"
    assert desc["inputs"][0]["name"] == "z" and desc["inputs"][0]["shape"][0] == "batch"
    meta = desc["metadata"]  # typed values, not strings
    assert meta["latent_dim"] == 4 and meta["sample_shape"] == [2] and meta["conditional"] is False
    assert meta["data"] == "ring" and meta["ema"] == 0.0
    code, out, _ = cli("info", onnx_path, tmp_path / "m.disc.onnx", "--json")
    assert code == 0 and [d["metadata"]["role"] for d in json.loads(out)] == ["generator", "discriminator"]
    code, out, _ = cli("info", onnx_path)
    assert code == 0 and "latent_dim" in out
    code, out, _ = cli("generate", onnx_path, "-n", "10", "-o", tmp_path / "p.npz", "--seed", "3", "-q")
    assert code == 0 and "wrote 10 samples" in out
    assert np.load(tmp_path / "p.npz")["x"].shape == (10, 2)


def test_train_without_out_writes_a_new_run_under_runs(cli, tmp_path, monkeypatch):
    """`gantools train --data X` alone: runs/X, then runs/X-2 (never into a finished run); --resume needs --out."""
    monkeypatch.chdir(tmp_path)
    for expected in ("ring", "ring-2"):
        code, out, _ = cli("train", "--data", "ring", "--steps", "3", "-q")
        assert code == 0
        assert f"runs/{expected}/checkpoints" in out
        assert (tmp_path / "runs" / expected / "config.json").is_file()
    assert_usage_error(cli("train", "--resume"), "--resume needs --out")


def test_resume_through_the_cli(cli, tmp_path):
    run = tmp_path / "run"
    assert (
        cli("train", "--data", "ring", "--steps", "2", "--lr-schedule", "constant", "--r1", "0", "--out", run, "-q")[0]
        == 0
    )
    assert_usage_error(cli("train", "--data", "ring", "--steps", "2", "--out", run, "-q"), "--resume")
    assert_usage_error(cli("train", "--resume", "--loss", "hinge", "--out", run, "-q"), "--loss")
    code, out, _ = cli("train", "--resume", "--steps", "4", "--out", run, "-q")
    assert code == 0 and "step_0000004.pt" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["train", "--out", "r", "--loss", "foo"], "--loss"),
        (["train", "--out", "r", "--steps", "0"], "--steps"),
        (["train", "--out", "r", "--model", "gan"], "--model"),
        (["train", "--out", "r", "--device", "tpu"], "--device"),
        (["train", "--out", "r", "--data", "nowhere"], "nowhere"),
        (["train", "--out", "r", "--data", "ring", "--model", "dcgan"], "--model mlp"),
        (["train", "--out", "r", "--data", "digits", "--model", "dcgan", "--image-size", "24"], "--image-size"),
        (["export", "missing_run", "-o", "m.onnx"], "missing_run"),
        (["generate", "missing.onnx", "-n", "4", "-o", "s"], "missing.onnx"),
        (["info", "missing.onnx"], "missing.onnx"),
        (["generate", "m.onnx", "-n", "0", "-o", "s"], "-n"),
        (["bogus"], "bogus"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    assert_usage_error(cli(*args), needle)
    assert not (tmp_path / "r").exists()


def test_bad_model_files_through_the_cli(cli, tmp_path, exported):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(exported["dcgan"].read_bytes()[:3000])
    assert_usage_error(cli("generate", cut, "-n", "4", "-o", tmp_path / "s"), "not a valid ONNX")
    assert_usage_error(cli("info", cut), "not a valid ONNX")
    assert not (tmp_path / "s").exists()
    code, out, err = cli("generate", exported["cdcgan"], "-n", "4", "-o", tmp_path / "t.npz", "--class", "12")
    assert_usage_error((code, out, err), "--class")
    assert not (tmp_path / "t.npz").exists()


def test_outputs_that_would_destroy_an_input_are_refused(cli, tmp_path):
    np.savez(tmp_path / "pts.npz", x=np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32))
    before = (tmp_path / "pts.npz").read_bytes()
    assert_usage_error(cli("stats", tmp_path / "pts.npz", "-o", tmp_path / "pts.npz"), "is an input")
    assert_usage_error(cli("stats", tmp_path / "pts.npz", "-o", tmp_path / "stats.png"), ".npz")
    assert_usage_error(
        cli("score", tmp_path / "pts.npz", "--real", "ring", "--metrics", "fid", "--json", tmp_path / "pts.npz"),
        "--json",
        "is an input",
    )
    assert (tmp_path / "pts.npz").read_bytes() == before and not (tmp_path / "stats.png").exists()


def test_a_failed_atomic_write_names_the_target_not_a_temporary_file(cli, tmp_path, exported):
    (tmp_path / "out" / "000001.png").mkdir(parents=True)  # a folder where a sample file must go
    code, out, err = cli("generate", exported["dcgan"], "-n", 3, "-o", tmp_path / "out", "--overwrite", "-q")
    assert code == 2 and "Traceback" not in err
    assert err.strip().endswith(str(tmp_path / "out" / "000001.png")) and ".tmp" not in err


def test_write_atomically_gives_a_plain_write_s_mode_and_a_failure_leaves_nothing(tmp_path, monkeypatch):
    from gantools import files

    files.write_atomically(tmp_path / "a.bin", b"abc" * 1000)
    (tmp_path / "plain.bin").write_bytes(b"")
    assert (tmp_path / "a.bin").read_bytes() == b"abc" * 1000
    assert (tmp_path / "a.bin").stat().st_mode == (tmp_path / "plain.bin").stat().st_mode

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full)
    with pytest.raises(OSError, match="No space left") as caught:
        files.write_atomically(tmp_path / "b.bin", b"x")
    assert caught.value.filename == str(tmp_path / "b.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "plain.bin"]


def test_a_model_needing_an_unknown_opset_says_so(cli, tmp_path, exported):
    import onnx

    model = onnx.load(str(exported["ring"]))
    model.opset_import[0].version = 99
    onnx.save(model, str(tmp_path / "future.onnx"))
    assert_usage_error(
        cli("generate", tmp_path / "future.onnx", "-n", 5, "-o", tmp_path / "x.npz"),
        "needs ONNX opset 99",
        "upgrade onnxruntime",
    )
    assert not (tmp_path / "x.npz").exists()


def test_a_model_whose_types_onnxruntime_has_no_kernel_for_says_so(cli, tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (tmp_path / "bf16.onnx").write_bytes(model.SerializeToString())  # valid ONNX: bf16 Relu has no CPU kernel
    assert_usage_error(
        cli("info", tmp_path / "bf16.onnx"), "bf16.onnx", "has no Relu (opset 14) kernel", "upgrade onnxruntime"
    )


def test_a_full_disk_gives_one_line_and_no_partial_file(cli, tmp_path, exported, monkeypatch):
    import errno

    import gantools.files

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gantools.files, "_write_npy", full)
    out = tmp_path / "new" / "x.npz"
    assert_usage_error(
        cli("generate", exported["ring"], "-n", 10, "-o", out, "-q"), "No space left on device", str(out)
    )
    assert list((tmp_path / "new").iterdir()) == []  # no partial file, no temporary left behind


def test_outputs_may_go_into_folders_that_do_not_exist_yet(cli, tmp_path, exported):
    code, _, err = cli(
        "score",
        exported["ring"],
        "--real",
        "ring",
        "--metrics",
        "modes",
        "-q",
        "--json",
        tmp_path / "a" / "s.json",
        "--log",
        tmp_path / "b" / "s.jsonl",
    )
    assert code == 0, err
    assert (tmp_path / "a" / "s.json").exists() and (tmp_path / "b" / "s.jsonl").exists()


def test_a_malicious_checkpoint_is_refused_and_its_payload_never_runs(cli, tmp_path):

    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # would create the marker file if unpickled

    import torch

    torch.save({"generator": Payload(), "config": {}}, tmp_path / "evil.pt")
    assert_usage_error(cli("export", tmp_path / "evil.pt", "-o", tmp_path / "x.onnx"), "cannot load checkpoint")
    assert not marker.exists() and not (tmp_path / "x.onnx").exists()


def test_a_model_reading_weights_from_outside_its_folder_is_refused(cli, tmp_path, exported):
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load(str(exported["ring"]))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    (tmp_path / "inside").mkdir()
    onnx.save(model, str(tmp_path / "inside" / "g.onnx"))  # weights beside it: fine
    assert cli("generate", tmp_path / "inside" / "g.onnx", "-n", 5, "-o", tmp_path / "ok.npz", "-q")[0] == 0
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    onnx.save(model, str(tmp_path / "inside" / "evil.onnx"), save_as_external_data=False)
    assert_usage_error(
        cli("generate", tmp_path / "inside" / "evil.onnx", "-n", 5, "-o", tmp_path / "x.npz"), "outside its own folder"
    )
    assert not (tmp_path / "x.npz").exists()


def test_every_command_reading_a_data_folder_can_skip_bad_images(cli, tmp_path):
    data = tmp_path / "data"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.full((8, 8), 15 * i + (120 if label == "b" else 0), np.uint8)).save(
                data / label / f"{i}.png"
            )
    (data / "a" / "broken.png").write_bytes(b"not a png")
    runs = {
        "train": ["train", "--data", data, "--out", tmp_path / "run", "--steps", 1],
        "stats": ["stats", data, "-o", tmp_path / "s.npz", "--extractor", "raw"],
        "score": ["score", data, "--real", data, "--extractor", "raw"],
        "train-classifier": ["train-classifier", "--data", data, "-o", tmp_path / "c.onnx", "--epochs", 1],
    }
    for name, args in runs.items():
        assert_usage_error(cli(*args, "-q"), "broken.png")
        code, _, err = cli(*args, "-q", "--skip-bad-images")
        assert code == 0 and "skipped 1 unreadable image(s)" in err, (name, err)
