"""Seeded latents: sample i of seed S always gets the same z, whatever the batching."""

from __future__ import annotations

import numpy as np


def latents_for(seed: int, start: int, n: int, latent_dim: int) -> np.ndarray:
    """z for samples start..start+n-1 of `seed`: float32 [n, latent_dim], N(0, I)."""
    out = np.empty((n, latent_dim), dtype=np.float32)
    for row, i in enumerate(range(start, start + n)):
        out[row] = np.random.default_rng([seed, i]).standard_normal(latent_dim, dtype=np.float32)
    return out


def labels_for(start: int, n: int, num_classes: int, fixed_class: int | None = None) -> np.ndarray | None:
    """Class of samples start..start+n-1: `fixed_class`, else i mod num_classes (balanced)."""
    if not num_classes:
        return None
    if fixed_class is not None:
        return np.full(n, fixed_class, dtype=np.int64)
    return np.arange(start, start + n, dtype=np.int64) % num_classes
