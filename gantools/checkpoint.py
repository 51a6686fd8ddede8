"""Checkpoints: state dicts, configs and RNG state, saved atomically, loaded without running code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts,
so `torch.load(..., weights_only=True)` reads it: loading a file never
executes code from it.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from .errors import GanToolsError
from .files import atomic_path

_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_dir(run_dir) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir, step: int, state: dict, keep: int = 3) -> Path:
    """Write checkpoints/step_NNNNNNN.pt atomically; keep the newest `keep`."""
    import torch

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
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GanToolsError(f"no checkpoint at {path}") from None
    except IsADirectoryError:
        raise GanToolsError(f"{path} is a folder; give a checkpoint file or a run directory") from None
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:160]
        raise GanToolsError(f"cannot load checkpoint {path}: damaged or not a PyTorch checkpoint ({detail})") from None
    if not isinstance(state, dict) or "generator" not in state or "config" not in state:
        raise GanToolsError(f"{path} is not a gantools checkpoint")
    return state


def latest_checkpoint(run_dir) -> Path:
    found = list_checkpoints(run_dir)
    if not found:
        raise GanToolsError(f"no checkpoints in {checkpoint_dir(run_dir)}; is {run_dir} a gantools run directory?")
    return found[-1]


def read_log(run) -> list[dict]:
    """The lines of a run's log.jsonl (none when it has none; a line a killed run left half-written is skipped)."""
    log, rows = Path(run) / "log.jsonl", []
    for line in log.read_text().splitlines() if log.is_file() else []:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def read_run_config(run_dir) -> dict:
    """A run's config.json as a dict; a missing or damaged file is a GanToolsError naming it."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise GanToolsError(f"{run_dir} holds no config.json; give a run directory made by `gantools train`")
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise GanToolsError(f"{path} is damaged ({exc}); restore it, or start a new run") from None
    if not isinstance(config, dict):
        raise GanToolsError(f"{path} is damaged (not a JSON object); restore it, or start a new run")
    return config


@contextlib.contextmanager
def checkpoint_fits(path):
    """Report a checkpoint whose weights or config do not build its own model (damaged, or not gantools')."""
    try:
        yield
    except GanToolsError as exc:
        raise GanToolsError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise GanToolsError(
            f"{path} does not rebuild a gantools model ({type(exc).__name__}: {detail}); "
            "is it damaged, or from another program?"
        ) from None
