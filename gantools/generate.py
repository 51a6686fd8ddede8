"""Batch generation with ONNX Runtime: seeded latents -> batches -> a PNG folder or an .npz.

Sample i of seed S always gets the same latent (see latents.py), so the
output does not depend on the batch size or the device, and an interrupted
folder can be finished with `resume=True`: every PNG is written atomically,
so a file that exists is complete.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data import unit_to_uint8
from .errors import GanToolsError
from .files import check_room, remove_stale_temporaries, write_atomically
from .latents import labels_for, latents_for
from .threads import map_ahead

GRID_MAX = 100  # images on a contact sheet
GRID_POINTS = 2500  # points on a scatter plot
LATENT_VALUES = 1 << 22  # latent values (16 MB) made in one vectorised call
PNG_OVERHEAD = 100  # bytes of a PNG beyond its pixels (signature, chunks, checksums), and its directory entry
FILE_SUFFIXES = (
    ".npy",
    ".png",
    ".jpg",
    ".jpeg",
    ".json",
    ".onnx",
    ".pt",
    ".pth",
    ".txt",
    ".csv",
    ".zip",
    ".tar",
    ".gz",
    ".h5",
    ".pkl",
)  # an -o that names one of these is a file, not a folder of PNGs


@dataclass
class GenerateReport:
    out: Path
    written: int
    skipped: int
    provider: str
    seconds: float
    grid: Path | None = None


def batch_inputs(model, seed: int, first: int, m: int, fixed_class: int | None = None):
    """(z, y) for samples first..first+m-1 of `seed`."""
    return latents_for(seed, first, m, model.latent_dim), labels_for(first, m, model.num_classes, fixed_class)


def sample_batch(model, seed: int, first: int, m: int, fixed_class: int | None = None):
    """(z, y, samples) for samples first..first+m-1 of `seed`."""
    z, y = batch_inputs(model, seed, first, m, fixed_class)
    return z, y, model(z, y)


def _inputs_ahead(pool, model, seed: int, fixed_class, plan):
    """(z, y) for each planned batch (first, m, ...), in order.

    Latents are made for runs of consecutive batches of up to LATENT_VALUES values at once: latents_for is
    vectorised over samples, and switching between it and ONNX Runtime costs time on the CPU. On a GPU the
    next run is made in `pool` while this one runs through the model. On the CPU it is made in this thread:
    ONNX Runtime's threads already keep every core busy, and a thread beside them stalls their parallel loops
    for longer than the latents take (bench/generate_speed.py times `generate` against bare inference)."""
    block = max(1, LATENT_VALUES // model.latent_dim)
    runs: list[list[tuple[int, int]]] = []
    size = 0  # samples in runs[-1]
    for job in plan:
        if runs and job[0] == runs[-1][-1][0] + runs[-1][-1][1] and size + job[1] <= block:
            runs[-1].append(job)
            size += job[1]
        else:
            runs.append([job])
            size = job[1]

    def make(run):
        return batch_inputs(model, seed, run[0][0], sum(j[1] for j in run), fixed_class)

    for run, (z, y) in zip(runs, map_ahead(pool, make, runs), strict=True):
        at = 0
        for _, m, *_ in run:
            yield z[at : at + m], None if y is None else y[at : at + m]
            at += m


def check_class(model, fixed_class: int | None) -> None:
    if fixed_class is None:
        return
    if not model.num_classes:
        raise GanToolsError(f"--class applies to conditional models; {model.path} has no classes")
    if not 0 <= fixed_class < model.num_classes:
        raise GanToolsError(f"--class must lie in 0..{model.num_classes - 1}, got {fixed_class}")


def _bytes_per_sample(model, to_npz: bool, save_latents: bool) -> int:
    """About what one sample takes on disk: its pixels or coordinates, labels and latents, or a PNG's overhead."""
    values = int(np.prod(model.sample_shape))
    if not to_npz:
        return values + PNG_OVERHEAD
    return (
        (values if model.kind == "image" else 4 * values)
        + 8 * bool(model.num_classes)
        + 4 * model.latent_dim * save_latents
    )


def _png_name(i: int, n: int) -> str:
    return f"{i:0{max(6, len(str(n - 1)))}d}.png"


_PNG = re.compile(r"^\d{6,}\.png$")


def _write_png(path: Path, pixels: np.ndarray) -> None:
    import io

    from PIL import Image

    encoded = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(encoded, format="PNG")
    write_atomically(path, encoded.getbuffer())


def generate(
    model_path,
    n: int,
    out,
    *,
    seed: int = 0,
    batch_size: int = 256,
    device: str = "auto",
    fixed_class: int | None = None,
    grid=None,
    save_latents: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    refine: str | None = None,
    discriminator=None,
    progress: bool = True,
) -> GenerateReport:
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
    if resume and overwrite:
        raise GanToolsError("--resume keeps the samples there and --overwrite replaces them: give one of them")
    if out.suffix.lower() in FILE_SUFFIXES:
        raise GanToolsError(
            f"-o {out}: generate writes a folder of PNGs or one .npz file; give a folder name or a name ending in .npz"
        )
    if save_latents and not to_npz:
        raise GanToolsError("--save-latents applies to .npz output: give -o FILE.npz")
    if grid is not None and Path(grid).suffix.lower() != ".png":
        raise GanToolsError(f"--grid must name a .png file, got {grid}")
    if not to_npz and out.exists() and not out.is_dir():
        raise GanToolsError(f"-o {out} is a file; give a folder for PNGs or a name ending in .npz")
    model = OnnxGenerator(model_path, device)
    check_class(model, fixed_class)
    draw: Callable[[int, int], Any] = functools.partial(sample_batch, model, seed, fixed_class=fixed_class)
    refiner = None
    if refine is not None:
        from .refine import Refiner, find_discriminator

        refiner = Refiner(model, find_discriminator(model_path, discriminator, device), refine, seed, fixed_class)
        draw = refiner.batch
    elif discriminator is not None:
        raise GanToolsError("--discriminator is used by --refine; add --refine drs or --refine mh")
    if model.kind != "image" and not to_npz:
        raise GanToolsError(f"{model_path} makes {model.sample_shape[0]}-D points, not images: give -o FILE.npz")
    check_room(out, n * _bytes_per_sample(model, to_npz, save_latents))
    existing = {p.name for p in out.iterdir() if _PNG.match(p.name)} if out.is_dir() else set()
    if existing and not (resume or overwrite):
        raise GanToolsError(
            f"{out} already holds {len(existing)} samples; pass --resume to finish the set, "
            "--overwrite to replace them, or choose another -o"
        )
    if to_npz and out.exists() and not overwrite:
        raise GanToolsError(f"{out} exists; pass --overwrite to replace it")

    from .distributed import current

    world = current()
    start, stop = world.shard(n, batch_size)
    if world.main:
        remove_stale_temporaries(out, "*.png") if out.is_dir() else remove_stale_temporaries(out)
    world.barrier()  # every rank has checked the output (and rank 0 tidied it) before any rank writes to it

    t0 = time.perf_counter()
    xs, ys, zs = [], [], []
    written = skipped = 0
    bar = progress_bar(total=stop - start, enabled=progress and world.main, desc="generate", unit="img")
    plan = []  # (first, m, PNG names, indices of the names still to write)
    for first in range(start, stop, batch_size):
        m = min(batch_size, stop - first)
        names = [] if to_npz else [_png_name(i, n) for i in range(first, first + m)]
        todo = [j for j, name in enumerate(names) if not (resume and name in existing)]
        skipped += len(names) - len(todo)
        if to_npz or todo:
            plan.append((first, m, names, todo))
    bar.update(stop - start - sum(m for _, m, _, _ in plan))
    # on a GPU, the next block of latents is made (in `ahead`) while this batch runs through the model
    on_gpu = model.provider == "cuda"
    with (
        ThreadPoolExecutor(max_workers=4) as pool,
        ThreadPoolExecutor(max_workers=1) if on_gpu else contextlib.nullcontext() as ahead,
    ):
        if refiner is None:
            samples = model.run_batches(_inputs_ahead(ahead, model, seed, fixed_class, plan))
        else:
            samples = refiner.run_batches([(first, m) for first, m, _, _ in plan])
        writes = []
        for (_, m, names, todo), (z, y, x) in zip(plan, samples, strict=True):
            if to_npz:
                xs.append(unit_to_uint8((x + 1) / 2) if model.kind == "image" else x.astype(np.float32, copy=False))
                ys.append(y)
                zs.append(z)
                written += m
            else:
                pixels = unit_to_uint8((x + 1) / 2)
                out.mkdir(parents=True, exist_ok=True)  # once a batch came out whole: no folder from a failed run
                writes += [pool.submit(_write_png, out / names[j], pixels[j]) for j in todo]
                written += len(todo)
                while len(writes) > 4 * batch_size:  # bound the memory held by queued images
                    writes.pop(0).result()
            bar.update(m)
        for w in writes:
            w.result()
    bar.close()
    if to_npz:
        arrays = {"x": xs, **({"y": ys} if model.num_classes else {}), **({"z": zs} if save_latents else {})}
        _write_npz_shares(out, arrays, world, n, batch_size)
    written, skipped = (int(v) for v in world.sum([written, skipped]))
    grid_path = None
    if grid is not None and world.main:
        grid_path = Path(grid)
        _, y_grid, x_grid = draw(0, min(n, GRID_MAX if model.kind == "image" else GRID_POINTS))
        _write_grid(model, x_grid, y_grid if model.num_classes else None, grid_path)
    return GenerateReport(out, written, skipped, model.provider, time.perf_counter() - t0, grid_path)


def _share_path(out: Path, rank: int, key: str) -> Path:
    return out.parent / f".{out.name}.rank{rank}.{key}.npy"


def _write_npz_shares(out: Path, arrays: dict, world, n: int, batch_size: int) -> None:
    """One .npz of every rank's samples, in index order.

    Each rank other than 0 writes its share to a hidden .npy beside `out`;
    rank 0 streams its own share and the others' (memory-mapped) into the
    .npz, so it never holds more than its own share, and removes them.
    """
    from .distributed import World
    from .files import write_npy_atomic, write_npz_atomic

    if not world.main and arrays["x"]:
        for key, chunks in arrays.items():
            write_npy_atomic(_share_path(out, world.rank, key), chunks)
    world.barrier()
    if not world.main:
        return
    ranks = [r for r in range(1, world.size) if len(range(*World(r, world.size).shard(n, batch_size)))]
    shares = {
        key: chunks + [np.load(_share_path(out, r, key), mmap_mode="r") for r in ranks]
        for key, chunks in arrays.items()
    }
    write_npz_atomic(out, shares)
    del shares
    for r in ranks:
        for key in arrays:
            _share_path(out, r, key).unlink()


def _write_grid(model, x: np.ndarray, y, path: Path) -> None:
    from .plots import save_png

    save_png(model_picture(model, x, y), path)


def model_picture(model, x: np.ndarray, y):
    """samples_picture of a generator's samples; 2-D samples over the modes of its built-in data set."""
    from .data import BUILTIN, load_source, true_modes
    from .plots import samples_picture

    built_in = model.kind == "points" and model.metadata.get("data") in BUILTIN
    modes = true_modes(load_source(model.metadata["data"])) if built_in else None
    return samples_picture(x, y, model.num_classes, modes)
