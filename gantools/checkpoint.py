"""Checkpoints: state dicts, configs and RNG state, saved atomically, loaded without running code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts,
so `torch.load(..., weights_only=True)` reads it: loading a file never
executes code from it.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .errors import GanToolsError
from .files import atomic_path

_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir, step: int, state: dict, keep: int = 3) -> Path:
    """Write checkpoints/step_NNNNNNN.pt atomically; keep the newest `keep`."""
    path = checkpoint_dir(run_dir) / f"step_{step:07d}.pt"
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir) -> list[Path]:
    """Checkpoint files of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(path) -> dict:
    """Load a checkpoint with weights_only=True; a bad file is a GanToolsError."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GanToolsError(f"no checkpoint at {path}") from None
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise GanToolsError(f"cannot load checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict) or "generator" not in state or "config" not in state:
        raise GanToolsError(f"{path} is not a gantools checkpoint")
    return state


def latest_checkpoint(run_dir) -> Path:
    found = list_checkpoints(run_dir)
    if not found:
        raise GanToolsError(f"no checkpoints in {checkpoint_dir(run_dir)}; is {run_dir} a gantools run directory?")
    return found[-1]
