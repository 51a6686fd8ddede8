"""Shared fixtures: tiny trained runs and their exports, made once per test session."""

from __future__ import annotations

import os

import pytest

from gantools.cli import main
from gantools.threads import ask_mkl_for_reproducible_sums

ask_mkl_for_reproducible_sums()  # as train() does, but before any test computes: MKL reads it once per process


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep the Inception ONNX cache of the tests out of the user's cache directory."""
    old = os.environ.get("GANTOOLS_CACHE")
    os.environ["GANTOOLS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        del os.environ["GANTOOLS_CACHE"]
    else:
        os.environ["GANTOOLS_CACHE"] = old


class ThreadRecorded:
    """An ONNX Runtime session that appends the id of the thread of each run to `ran_in` (which lane ran it)."""

    def __init__(self, session, ran_in: list):
        self.session, self.ran_in = session, ran_in

    def run(self, *args):
        import threading

        self.ran_in.append(threading.get_ident())
        return self.session.run(*args)


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""

    def run(*args):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    return run


def assert_usage_error(result, *needles):
    """Exit code 2, one line on stderr naming what to fix, no traceback, nothing on stdout."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("gantools: error:"), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert out == ""


def torch_sample_flops(run) -> int:
    """PyTorch's FlopCounterMode count of one sample through a run's exported generator module."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from gantools.checkpoint import latest_checkpoint, load_checkpoint
    from gantools.export import checkpoint_to_modules

    state = load_checkpoint(latest_checkpoint(run))
    module, _ = checkpoint_to_modules(state)
    inputs = [torch.zeros(1, state["config"]["latent_dim"])]
    if state["config"]["num_classes"]:
        inputs.append(torch.zeros(1, dtype=torch.long))
    with FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops()


def _train(out, **options):
    from gantools.train import train

    options.setdefault("checkpoint_every", 1000)
    options.setdefault("sample_every", 1000)
    options.setdefault("log_every", 5)
    train(out, progress=False, **options)
    return out


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Tiny runs (a few steps each): enough to exercise shapes, files and parity, not quality."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "dcgan": _train(root / "dcgan", data="digits", model="dcgan", steps=6, width=8),
        "cdcgan": _train(
            root / "cdcgan", data="digits", model="dcgan", steps=6, width=8, conditional=True, spectral_norm=True
        ),
        "ring": _train(root / "ring", data="ring", model="mlp", steps=6, ema=0.9),  # the recipe has no EMA
    }


@pytest.fixture(scope="session")
def exported(runs, tmp_path_factory):
    from gantools.export import export_run

    root = tmp_path_factory.mktemp("exported")
    out = {}
    for name, run in runs.items():
        out[name] = root / f"{name}.onnx"
        export_run(run, out[name])
    return out


@pytest.fixture(scope="session")
def digits_classifier(tmp_path_factory):
    """A domain classifier of the digits (a few epochs: accurate enough to judge classes)."""
    from gantools.classifier import train_classifier

    path = tmp_path_factory.mktemp("classifier") / "clf.onnx"
    train_classifier("digits", path, epochs=15, progress=False)
    return path
