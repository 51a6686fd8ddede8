"""kill -9 at a random moment during generate, export and stats: every file left is complete, and a rerun finishes the
job with exactly the files an uninterrupted run writes (training's kill test is in test_train.py)."""

import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

RUN = [sys.executable, "-m", "gantools"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _kill_when(cmd, ready, seed: int, may_finish: bool = False) -> None:
    """Start cmd, wait until ready() (the job is under way), then SIGKILL it at a random moment shortly after.
    With may_finish, a job that ends first is fine (what it left is checked all the same)."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ready():
        if may_finish and proc.poll() is not None:
            return
        assert time.monotonic() < deadline and proc.poll() is None, "the job ended before it could be killed"
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0, 0.05))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith("."))


@pytest.mark.parametrize("seed", [0, 1])
def test_generate_folder_killed_then_resumed_equals_one_run(exported, tmp_path, seed):
    args = [*RUN, "generate", str(exported["dcgan"]), "-n", "3000", "--batch-size", "50", "-q"]
    cut = tmp_path / "cut"
    _kill_when([*args, "-o", str(cut)], lambda: cut.is_dir() and len(list(cut.glob("*.png"))) >= 100, seed)
    written = sorted(cut.glob("*.png"))
    assert 100 <= len(written) < 3000
    for png in written:  # every file present is a whole PNG
        with Image.open(png) as im:
            im.load()
    assert subprocess.run([*args, "-o", str(cut), "--resume"], env=ENV, check=False).returncode == 0
    full = tmp_path / "full"
    assert subprocess.run([*args, "-o", str(full)], env=ENV, check=False).returncode == 0
    names = sorted(p.name for p in full.glob("*.png"))
    assert sorted(p.name for p in cut.glob("*.png")) == names and len(names) == 3000
    assert all((cut / n).read_bytes() == (full / n).read_bytes() for n in names)
    assert _leftovers(cut) == []  # the rerun removed the killed write's temporary file, if it left one


def test_generate_npz_killed_leaves_nothing_or_a_whole_file(exported, tmp_path):
    out = tmp_path / "x.npz"
    args = [*RUN, "generate", str(exported["dcgan"]), "-n", "60000", "--batch-size", "512", "-q", "-o", str(out)]
    _kill_when(args, lambda: any(tmp_path.iterdir()), seed=2, may_finish=True)  # while the .npz is written
    assert not out.exists() or zipfile.ZipFile(out).testzip() is None
    assert subprocess.run([*args, "--overwrite"], env=ENV, check=False).returncode == 0
    with np.load(out) as z:
        assert z["x"].shape == (60000, 8, 8, 1)


def test_stats_killed_leaves_nothing_and_a_rerun_writes_the_file(tmp_path):
    out = tmp_path / "ref.npz"
    args = [*RUN, "stats", "digits", "--extractor", "raw", "-o", str(out), "-q", "--no-cache"]
    started, at = time.monotonic(), random.Random(3).uniform(0.2, 1.5)
    _kill_when(args, lambda: time.monotonic() - started > at, seed=3, may_finish=True)  # start-up or later
    assert not out.exists() or np.load(out)["mu"].shape == (64,)
    assert subprocess.run(args, env=ENV, check=False).returncode == 0
    with np.load(out) as z:
        assert z["mu"].shape == (64,) and z["sigma"].shape == (64, 64)


@pytest.mark.parametrize("seed", [4, 5])
def test_export_killed_leaves_only_whole_models_and_a_rerun_writes_both(runs, tmp_path, seed):
    import onnx

    out = tmp_path / "g.onnx"
    args = [*RUN, "export", str(runs["dcgan"]), "-o", str(out)]
    started, at = time.monotonic(), random.Random(seed).uniform(1.0, 4.0)  # in start-up, export or parity checks
    _kill_when(args, lambda: time.monotonic() - started > at, seed=seed, may_finish=True)
    for model in tmp_path.glob("*.onnx"):  # a file present is a whole model
        onnx.checker.check_model(onnx.load(str(model)))
    assert subprocess.run([*args, "--overwrite"], env=ENV, check=False).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.disc.onnx", "g.onnx"]  # no temporaries left
