"""Precision/recall (Kynkäänniemi et al. 2019) and density/coverage (Naeem et al. 2020).

All four come from k-nearest-neighbour balls around real and fake features.
Distances are computed a block of rows at a time, so 50k x 50k distance
matrices never sit in memory; squared distances are compared with squared
radii (the same order, no square roots).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .registry import Inputs

CHUNK = 512


def sq_norms(x):
    return np.einsum("ij,ij->i", x, x, dtype=np.float64)


def sq_dists(a, a_norms, b, b_norms):
    d = a_norms[:, None] + b_norms[None, :] - 2.0 * (a @ b.T).astype(np.float64)
    return np.maximum(d, 0.0)


def knn_sq_radii(x, ks) -> dict:
    """{k: squared distance of each row to its k-th nearest other row} for every k in ks."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = sq_norms(x)
    kmax = max(ks)
    if len(x) <= kmax:
        raise ValueError(f"k-nearest neighbours with k={kmax} need more than {kmax} samples, got {len(x)}")
    out = {k: np.empty(len(x)) for k in ks}
    for start in range(0, len(x), CHUNK):
        d = sq_dists(x[start : start + CHUNK], norms[start : start + CHUNK], x, norms)
        nearest = np.sort(np.partition(d, kmax, axis=1)[:, : kmax + 1], axis=1)  # column 0 is the row itself
        for k in ks:
            out[k][start : start + CHUNK] = nearest[:, k]
    return out


def prdc(real, fake, k_pr: int = 3, k_dc: int = 5) -> dict:
    """precision, recall (k_pr) and density, coverage (k_dc) of fake features against real ones."""
    real = np.ascontiguousarray(real, dtype=np.float32)
    fake = np.ascontiguousarray(fake, dtype=np.float32)
    ks = sorted({k_pr, k_dc})
    real_r = knn_sq_radii(real, ks)
    fake_r = knn_sq_radii(fake, [k_pr])[k_pr]
    real_norms, fake_norms = sq_norms(real), sq_norms(fake)
    in_real_ball = np.zeros(len(fake), dtype=bool)  # precision: fake inside some real k_pr-ball
    density_count = np.zeros(len(fake), dtype=np.int64)  # density: number of real k_dc-balls holding it
    recalled = np.zeros(len(real), dtype=bool)  # recall: real inside some fake k_pr-ball
    covered = np.zeros(len(real), dtype=bool)  # coverage: nearest fake inside the real k_dc-ball
    for start in range(0, len(real), CHUNK):
        rows = slice(start, start + CHUNK)
        d = sq_dists(real[rows], real_norms[rows], fake, fake_norms)
        in_real_ball |= (d < real_r[k_pr][rows, None]).any(axis=0)
        density_count += (d < real_r[k_dc][rows, None]).sum(axis=0)
        recalled[rows] = (d < fake_r[None, :]).any(axis=1)
        covered[rows] = d.min(axis=1) < real_r[k_dc][rows]
    return {
        "precision": float(in_real_ball.mean()),
        "recall": float(recalled.mean()),
        "density": float(density_count.sum() / (k_dc * len(fake))),
        "coverage": float(covered.mean()),
    }


def score_prdc(inputs: Inputs) -> dict:
    """Precision, recall, density and coverage of the two sides' feature rows."""
    return prdc(inputs.rows("real"), inputs.rows("fake"), inputs.options.k_pr, inputs.options.k_dc)
