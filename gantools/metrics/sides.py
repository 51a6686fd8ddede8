"""The two sides of a comparison: a data source or an exported generator, read as batches.

A side to score is anything a data source takes (built-in name, folder,
.npz/.npy, MNIST IDX) or an exported generator (.onnx, sampled on the fly);
the real side may also be a reference-statistics .npz (FID and IS only).
Generated samples are rounded to 8-bit pixels before feature extraction,
exactly as if they had been written to PNG files and read back, so scoring
a model and scoring the folder it generates give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..runtime import OnnxGenerator

DEFAULT_GENERATED = 10_000
DEFAULT_POINTS = 2_500  # the mode-collapse literature scores 2,500 samples
KIND_WORDS = {"image": "images", "points": "points"}


@dataclass
class Samples:
    """One side of a comparison: where its batches come from and what they are."""

    name: str
    kind: str
    sample_shape: tuple
    count: int
    batches: Callable[..., Iterator]  # (batch_size, start, stop) -> (x in [0, 1] NCHW or points, labels or None)
    seed: int = 0
    generator: OnnxGenerator | None = None
    source: Any = None  # the data source it reads, when it is one


def _quantize(x_model: np.ndarray) -> np.ndarray:
    """[-1, 1] model output -> [0, 1] on the 8-bit grid a PNG round trip would give."""
    return np.rint(np.clip((x_model + 1.0) / 2.0, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def is_ref_stats(spec) -> bool:
    from ..data import ARRAY_READ_ERRORS

    p = Path(str(spec))
    if p.suffix.lower() != ".npz" or not p.is_file():
        return False
    try:
        with np.load(p, allow_pickle=False) as z:
            return "mu" in z.files and "sigma" in z.files
    except ARRAY_READ_ERRORS:
        return False


def open_samples(
    spec,
    n: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
    device: str = "auto",
    skip_bad_images: bool = False,
) -> Samples:
    """A data source or an exported generator as a Samples side."""
    spec = str(spec)
    if spec.lower().endswith(".onnx"):
        from ..generate import sample_batch
        from ..runtime import OnnxGenerator

        g = OnnxGenerator(spec, device)  # --image-size resizes data sources only
        count = n if n is not None else DEFAULT_GENERATED if g.kind == "image" else DEFAULT_POINTS

        def generated(batch_size, start=0, stop=count):
            for first in range(start, stop, batch_size):
                _, y, x = sample_batch(g, seed, first, min(batch_size, stop - first))
                yield (_quantize(x) if g.kind == "image" else x.astype(np.float32)), y

        return Samples(spec, g.kind, g.sample_shape, count, generated, seed=seed, generator=g)
    from ..data import load_source

    src = load_source(spec, image_size, skip_bad_images, stream=True)  # each sample is read once, in order
    if hasattr(src, "__len__"):
        count = len(src) if n is None else min(n, len(src))
    else:  # a mixture, sampled on the fly
        count = DEFAULT_POINTS if n is None else n
    return Samples(
        spec,
        src.kind,
        tuple(src.sample_shape),
        count,
        lambda batch_size, start=0, stop=count: src.batches(batch_size, count, seed, start, stop),
        seed=seed,
        source=src,
    )
