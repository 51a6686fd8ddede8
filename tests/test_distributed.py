"""torchrun with two Gloo processes on this CPU, each compared with its one-process twin."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import assert_usage_error

from gantools.distributed import World


def torchrun(*args, cwd, timeout=120):
    """`torchrun --standalone --nproc-per-node 2 -m gantools ARGS`: (exit code, stdout, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "gantools",
        *map(str, args),
    ]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("n,batch,size", [(300, 64, 2), (10, 256, 2), (5, 1, 8), (1000, 100, 3), (64, 64, 4)])
def test_shards_cover_every_item_once_in_whole_batches(n, batch, size):
    shards = [World(rank=r, size=size).shard(n, batch) for r in range(size)]
    assert shards[0][0] == 0 and shards[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(shards))  # contiguous, in rank order
    assert all(start % batch == 0 or start == stop for start, stop in shards)  # one-process batch boundaries
    assert shards[0][1] > 0  # rank 0, which merges, always has work


def test_streamed_npz_equals_numpy_and_is_byte_stable(tmp_path, monkeypatch):
    """The same bytes whether the rows are written as they came or joined and split into 2-row blocks."""
    from gantools import files

    x = np.arange(7 * 3 * 2, dtype=np.uint8).reshape(7, 3, 2)
    y = np.arange(7, dtype=np.int64)
    files.write_npz_atomic(tmp_path / "a.npz", {"x": [x[:2], x[2:]], "y": [y[:5], y[5:]]})
    monkeypatch.setattr(files, "_BLOCK_BYTES", 12)  # 2 rows of x, 1 of y
    files.write_npz_atomic(tmp_path / "b.npz", {"x": [x[:1], x[1:2], x[2:]], "y": [y[:5], y[5:]]})
    with np.load(tmp_path / "a.npz") as z:
        np.testing.assert_array_equal(z["x"], x)
        np.testing.assert_array_equal(z["y"], y)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_row_blocks_join_small_chunks_and_split_big_ones():
    from gantools.files import _row_blocks

    chunks = [np.arange(a, b) for a, b in ((0, 3), (3, 3), (3, 13), (13, 14), (14, 21))]
    blocks = list(_row_blocks(chunks, 4))
    # 3 rows + (empty) + the first 4 of 10 -> 7; the next 4; 2 + 1 + 4 -> 7; the last 3
    assert [len(b) for b in blocks] == [7, 4, 7, 3]
    np.testing.assert_array_equal(np.concatenate(blocks), np.arange(21))


def _generator_outputs(checkpoint):
    from gantools.models import build_models

    state = torch.load(checkpoint, weights_only=True)
    G, _ = build_models(state["config"])
    G.load_state_dict(state["generator"])
    G.eval()
    z = torch.randn(1000, state["config"]["latent_dim"], generator=torch.Generator().manual_seed(1))
    y = torch.arange(1000) % state["config"]["num_classes"] if state["config"]["num_classes"] else None
    with torch.no_grad():
        return G(z, y).numpy()


RUNS = {
    "ring-mlp": ["--data", "ring", "--steps", "20"],
    # convolutions, spectral norm, a conditional projection D and lazy R1 (a double backward) under DDP
    "digits-cdcgan": [
        "--data",
        "digits",
        "--conditional",
        "--steps",
        "8",
        "--width",
        "8",
        "--spectral-norm",
        "--r1",
        "1",
    ],
}


@pytest.mark.parametrize("name", RUNS)
def test_ddp_training_follows_the_one_process_run(tmp_path, cli, name):
    args = [*RUNS[name], "--checkpoint-every", "4", "--keep", "10", "--log-every", "2", "-q"]
    assert cli("train", *args, "--out", tmp_path / "one")[0] == 0
    code, out, err = torchrun("train", *args, "--out", tmp_path / "two", cwd=tmp_path)
    assert code == 0, err
    assert out.count("trained:") == 1  # rank 0 alone reports
    final = sorted((tmp_path / "one" / "checkpoints").iterdir())[-1].name
    ours, theirs = (_generator_outputs(tmp_path / run / "checkpoints" / final) for run in ("one", "two"))
    assert np.abs(ours - theirs).max() <= 1e-4
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["world_size"] == 2 and config["batch_per_rank"] * 2 == config["batch_size"]
    logs = [
        [json.loads(ln) for ln in (tmp_path / run / "log.jsonl").read_text().splitlines()] for run in ("one", "two")
    ]
    assert [r["step"] for r in logs[0]] == [r["step"] for r in logs[1]]  # written once, by rank 0
    for a, b in zip(*logs, strict=True):  # each rank's loss is its slice's mean: their average is the global batch's
        assert a["d_loss"] == pytest.approx(b["d_loss"], rel=1e-3)
        assert a["d_real"] == pytest.approx(b["d_real"], abs=1e-4)

    # --resume across a changed world size: the 2-process run's checkpoint finished by one process
    shutil.copytree(tmp_path / "two", tmp_path / "resumed")
    (tmp_path / "resumed" / "checkpoints" / final).unlink()
    assert cli("train", "--resume", "--out", tmp_path / "resumed", "-q")[0] == 0
    resumed = _generator_outputs(tmp_path / "resumed" / "checkpoints" / final)
    assert np.abs(ours - resumed).max() <= 1e-4
    assert json.loads((tmp_path / "resumed" / "config.json").read_text())["world_size"] == 1


def test_distributed_generate_writes_the_one_process_bytes(tmp_path, cli, exported, monkeypatch):
    for out, extra in (("x.npz", ["--save-latents"]), ("pngs", ["--grid", "grid.png"])):
        model = exported["cdcgan" if out.endswith(".npz") else "dcgan"]
        args = ["generate", model, "-n", 300, "--batch-size", 64, "-q", *extra]
        for side in ("one", "two"):
            (tmp_path / side).mkdir(exist_ok=True)
        monkeypatch.chdir(tmp_path / "one")  # the relative --grid lands in the working directory
        assert cli(*args, "-o", tmp_path / "one" / out)[0] == 0
        code, stdout, err = torchrun(*args, "-o", tmp_path / "two" / out, cwd=tmp_path / "two")
        assert code == 0, err
        assert stdout.count("wrote 300 samples") == 1
        if out.endswith(".npz"):
            assert (tmp_path / "one" / out).read_bytes() == (tmp_path / "two" / out).read_bytes()
            assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["x.npz"]  # no rank shares left
        else:
            names = sorted(p.name for p in (tmp_path / "one" / out).iterdir())
            assert names == sorted(p.name for p in (tmp_path / "two" / out).iterdir()) and len(names) == 300
            for name in names:
                assert (tmp_path / "one" / out / name).read_bytes() == (tmp_path / "two" / out / name).read_bytes()
            assert (tmp_path / "one" / "grid.png").read_bytes() == (tmp_path / "two" / "grid.png").read_bytes()


def test_distributed_score_equals_the_one_process_scores(tmp_path, cli, exported, digits_classifier):
    args = [
        "score",
        exported["cdcgan"],
        "--real",
        "digits:test",
        "-n",
        300,
        "--metrics",
        "fid,kid,prdc,c2st,classes",
        "--extractor",
        "classifier",
        "--classifier",
        digits_classifier,
        "--batch-size",
        64,
        "-q",
    ]
    assert cli(*args, "--json", tmp_path / "one.json")[0] == 0
    code, out, err = torchrun(*args, "--json", tmp_path / "two.json", cwd=tmp_path)
    assert code == 0, err
    assert out.count("n=") == 1  # one table, from rank 0
    one, two = (json.loads((tmp_path / f"{k}.json").read_text()) for k in ("one", "two"))
    assert (one.pop("world_size"), two.pop("world_size")) == (1, 2)
    assert two.pop("fid") == pytest.approx(one.pop("fid"), rel=1e-6)
    one.pop("seconds"), two.pop("seconds")
    assert one == two  # kid, prdc, c2st, classes: the same features in the same order give the same numbers


def test_a_failing_gate_under_torchrun_exits_1_after_one_report(tmp_path, exported):
    """Every rank finishes its share and leaves together; rank 0 reports the failed gate and the job exits 1."""
    code, out, err = torchrun(
        "score",
        exported["ring"],
        "--real",
        "ring",
        "-n",
        500,
        "--metrics",
        "modes",
        "--min",
        "modes=9",
        "-q",
        cwd=tmp_path,
    )
    assert code == 1, err
    assert out.count("FAILED") == 1 and "gantools: error" not in err


def test_a_failing_rank_fails_the_job_quickly(tmp_path, exported):
    out = tmp_path / "samples"
    (out / "000256.png").mkdir(parents=True)  # rank 1's first file cannot be written
    t0 = time.perf_counter()
    code, _, err = torchrun(
        "generate",
        exported["dcgan"],
        "-n",
        400,
        "--batch-size",
        64,
        "-o",
        out,
        "--overwrite",
        "-q",
        cwd=tmp_path,
        timeout=60,
    )
    assert code != 0
    assert time.perf_counter() - t0 < 30
    assert "gantools: error: rank 1: Is a directory" in err


def test_commands_that_do_not_scale_out_refuse_torchrun(cli, monkeypatch, exported, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert_usage_error(cli("export", exported["ring"], "-o", tmp_path / "x.onnx"), "export runs in one process")
    assert_usage_error(
        cli("train", "--data", "ring", "--batch-size", 255, "--out", tmp_path / "run"),
        "--batch-size 255",
        "multiple of 2",
    )
    assert not (tmp_path / "run").exists()
