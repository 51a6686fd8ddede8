"""Batch generation with ONNX Runtime: seeded latents -> batches -> a PNG folder or an .npz.

Sample i of seed S always gets the same latent (see latents.py), so the
output does not depend on the batch size or the device, and an interrupted
folder can be finished with `resume=True`: every PNG is written atomically,
so a file that exists is complete.
"""

from __future__ import annotations

import functools
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import unit_to_uint8
from .errors import GanToolsError
from .files import atomic_path
from .latents import labels_for, latents_for

GRID_MAX = 100  # images on a contact sheet
GRID_POINTS = 2500  # points on a scatter plot


@dataclass
class GenerateReport:
    out: Path
    written: int
    skipped: int
    provider: str
    seconds: float
    grid: Path | None = None


def sample_batch(model, seed: int, first: int, m: int, fixed_class: int | None = None):
    """(z, y, samples) for samples first..first+m-1 of `seed`."""
    z = latents_for(seed, first, m, model.latent_dim)
    y = labels_for(first, m, model.num_classes, fixed_class)
    return z, y, model(z, y)


def check_class(model, fixed_class: int | None) -> None:
    if fixed_class is None:
        return
    if not model.num_classes:
        raise GanToolsError(f"--class applies to conditional models; {model.path} has no classes")
    if not 0 <= fixed_class < model.num_classes:
        raise GanToolsError(f"--class must lie in 0..{model.num_classes - 1}, got {fixed_class}")


def _png_name(i: int, n: int) -> str:
    return f"{i:0{max(6, len(str(n - 1)))}d}.png"


_PNG = re.compile(r"^\d{6,}\.png$")


def _write_png(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(tmp, format="PNG")


def generate(model_path, n: int, out, *, seed: int = 0, batch_size: int = 256, device: str = "auto",
             fixed_class: int | None = None, grid=None, save_latents: bool = False, resume: bool = False,
             overwrite: bool = False, refine: str | None = None, discriminator=None,
             progress: bool = True) -> GenerateReport:
    """Write n samples of the generator at `model_path` to `out` (a folder, or a file ending .npz).

    With `refine` ("drs" or "mh"), the discriminator (`discriminator`, else
    NAME.disc.onnx beside the generator) picks among candidates (refine.py).
    """
    from .progress import progress_bar
    from .runtime import OnnxGenerator

    out = Path(out)
    to_npz = out.suffix.lower() == ".npz"
    for name, value, low in (("-n", n, 1), ("--batch-size", batch_size, 1), ("--seed", seed, 0)):
        if value < low:
            raise GanToolsError(f"{name} must be at least {low}, got {value}")
    if to_npz and resume:
        raise GanToolsError("--resume applies to PNG folders; an .npz is written whole or not at all")
    if save_latents and not to_npz:
        raise GanToolsError("--save-latents applies to .npz output: give -o FILE.npz")
    if grid is not None and Path(grid).suffix.lower() != ".png":
        raise GanToolsError(f"--grid must name a .png file, got {grid}")
    if not to_npz and out.exists() and not out.is_dir():
        raise GanToolsError(f"-o {out} is a file; give a folder for PNGs or a name ending in .npz")
    model = OnnxGenerator(model_path, device)
    check_class(model, fixed_class)
    draw = functools.partial(sample_batch, model, seed, fixed_class=fixed_class)
    if refine is not None:
        from .refine import Refiner, find_discriminator

        draw = Refiner(model, find_discriminator(model_path, discriminator, device), refine, seed, fixed_class).batch
    elif discriminator is not None:
        raise GanToolsError("--discriminator is used by --refine; add --refine drs or --refine mh")
    if model.kind != "image" and not to_npz:
        raise GanToolsError(f"{model_path} makes {model.sample_shape[0]}-D points, not images: give -o FILE.npz")
    existing = {p.name for p in out.iterdir() if _PNG.match(p.name)} if out.is_dir() else set()
    if existing and not (resume or overwrite):
        raise GanToolsError(f"{out} already holds {len(existing)} samples; pass --resume to finish the set, "
                            "--overwrite to replace them, or choose another -o")
    if to_npz and out.exists() and not overwrite:
        raise GanToolsError(f"{out} exists; pass --overwrite to replace it")

    t0 = time.perf_counter()
    keep = min(n, GRID_MAX) if grid is not None else 0
    kept, xs, ys, zs = [], [], [], []
    written = skipped = 0
    bar = progress_bar(total=n, enabled=progress, desc="generate", unit="img")
    with ThreadPoolExecutor(max_workers=4) as pool:
        writes = []
        for first in range(0, n, batch_size):
            m = min(batch_size, n - first)
            names = [] if to_npz else [_png_name(i, n) for i in range(first, first + m)]
            todo = [j for j, name in enumerate(names) if not (resume and name in existing)]
            skipped += len(names) - len(todo)
            if not to_npz and not todo and first >= keep:
                bar.update(m)
                continue
            z, y, x = draw(first, m)
            if first < keep:
                kept.append((x[: keep - first], None if y is None else y[: keep - first]))
            if to_npz:
                xs.append(unit_to_uint8((x + 1) / 2) if model.kind == "image" else x.astype(np.float32))
                ys.append(y)
                zs.append(z)
                written += m
            else:
                pixels = unit_to_uint8((x + 1) / 2)
                writes += [pool.submit(_write_png, out / names[j], pixels[j]) for j in todo]
                written += len(todo)
                while len(writes) > 4 * batch_size:  # bound the memory held by queued images
                    writes.pop(0).result()
            bar.update(m)
        for w in writes:
            w.result()
    bar.close()
    if to_npz:
        arrays = {"x": np.concatenate(xs)}
        if model.num_classes:
            arrays["y"] = np.concatenate(ys)
        if save_latents:
            arrays["z"] = np.concatenate(zs)
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    grid_path = None
    if grid is not None:
        grid_path = Path(grid)
        if model.kind == "image":
            x_grid = np.concatenate([x for x, _ in kept])
            y_grid = None if model.num_classes == 0 else np.concatenate([y for _, y in kept])
        else:
            x_grid, y_grid = np.concatenate(xs)[:GRID_POINTS], None
        _write_grid(model, x_grid, y_grid, grid_path)
    return GenerateReport(out, written, skipped, model.provider, time.perf_counter() - t0, grid_path)


def _write_grid(model, x: np.ndarray, y, path: Path) -> None:
    from .data import BUILTIN, load_source, true_modes
    from .plots import samples_picture, save_png

    built_in = model.kind == "points" and model.metadata.get("data") in BUILTIN
    modes = true_modes(load_source(model.metadata["data"])) if built_in else None
    save_png(samples_picture(x, y, model.num_classes, modes), path)
