"""Data copying: the three-sample test C_T of Meehan, Chaudhuri and Dasgupta (AISTATS 2020).

A generator that copies its training data puts samples closer to training
points than fresh data from the same distribution lies. The test partitions
feature space into cells by k-means on the training features; in each cell it
compares, with a Mann-Whitney U test, the distances from generated samples to
their nearest training sample against those from held-out samples; and it
combines the cells' Z scores, weighted by the held-out share of each cell.
C_T near 0: no copying; well below 0 (-3 is a common bound): copying; well
above 0: the samples lie farther from the data than held-out data does
(underfitting, not privacy). Its size grows with the samples per cell: a cell
of n held-out and m generated samples, all copies, gives about
-sqrt(3mn / (m + n + 1)) (-12 for 100 and 100), and a share s of copies
about s times that. Cells are compared separately so that a model
that copies in one region and underfits in another is still caught.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .registry import Inputs

MIN_CELL_GENERATED = 20  # cells with fewer generated samples are left out (Meehan et al.'s Pi_tau)
# The default cell count leaves about this many held-out samples in a cell (Meehan et al.: 50 cells of 10,000
# MNIST test digits, 200 each). A share s of copies moves a cell's Z by about -s sqrt(3mn / (m + n + 1)): for
# 30% copies, -1.8 in cells of 25 and 25 samples, -3.7 in cells of 100 and 100
HELD_OUT_PER_CELL = 100
MAX_CELLS = 50
NEAR_QUANTILE = 0.01  # "too close": nearer a training sample than this quantile of held-out distances
SUSPECTS = 8
SAME = 1e-6  # a held-out sample this near a training one (relative to the data's RMS norm) is that sample


def default_cells(n_heldout: int) -> int:
    """Cells for n held-out samples: about HELD_OUT_PER_CELL each, at most MAX_CELLS, at least 2."""
    return max(2, min(MAX_CELLS, n_heldout // HELD_OUT_PER_CELL))


def nearest_distances(queries: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Euclidean distance from each query to its nearest reference row, that row's index), in float64 and in
    blocks, so memory stays bounded whatever the sizes."""
    q, r = np.asarray(queries, np.float64), np.asarray(reference, np.float64)
    r_sq = np.einsum("ij,ij->i", r, r)
    dist, idx = np.empty(len(q)), np.empty(len(q), np.int64)
    block = max(1, 2**24 // max(1, len(r)))
    for first in range(0, len(q), block):
        part = q[first : first + block]
        d2 = np.einsum("ij,ij->i", part, part)[:, None] - 2.0 * part @ r.T + r_sq[None, :]
        near = d2.argmin(axis=1)
        idx[first : first + block] = near
        dist[first : first + block] = np.sqrt(np.maximum(d2[np.arange(len(part)), near], 0.0))
    return dist, idx


def z_mann_whitney(generated: np.ndarray, heldout: np.ndarray) -> float:
    """Z score of the Mann-Whitney U of generated against held-out distances: U counts the pairs where the
    generated distance is the larger (ties half), centred with Meehan et al.'s continuity correction. Very
    negative when generated samples sit closer to the training data than held-out ones."""
    g, h = np.sort(np.asarray(generated, np.float64)), np.asarray(heldout, np.float64)
    m, n = len(g), len(h)
    below = np.searchsorted(g, h, side="left")  # generated distances < each held-out one
    not_above = np.searchsorted(g, h, side="right")  # <=
    u = float(m * n - not_above.sum() + 0.5 * (not_above - below).sum())  # pairs with g > h, ties half
    return (u - (m * n / 2.0 - 0.5)) / math.sqrt(m * n * (m + n + 1) / 12.0)


def copying_test(train, heldout, generated, cells: int | None = None, seed: int = 0) -> dict:
    """C_T of (training, held-out, generated) features, and a plainer figure beside it.

    `copying_share` is the share of generated samples nearer to a training sample than the closest 1% of
    held-out samples are (about 0.01 for a generator that does not copy; the copied share for one that
    copies part of the time). Raises ValueError on inputs the test cannot judge.
    """
    from sklearn.cluster import KMeans

    t, p, q = (np.asarray(a, np.float64) for a in (train, heldout, generated))
    k = cells or default_cells(len(p))
    if len(t) < k or len(p) < k:
        raise ValueError(
            f"the copying test splits the training data into {k} cells and needs at least as many training and "
            f"held-out samples; got {len(t)} training and {len(p)} held-out: give more samples"
        )
    if len(q) < MIN_CELL_GENERATED:
        raise ValueError(f"the copying test needs at least {MIN_CELL_GENERATED} generated samples; got {len(q)}")
    d_p, _ = nearest_distances(p, t)
    same = int((d_p <= SAME * math.sqrt(np.mean(np.einsum("ij,ij->i", t, t)))).sum())  # float error of 0
    if same > len(p) // 2:
        raise ValueError(
            f"{same} of the {len(p)} held-out samples are also training samples: --real must be data the "
            "generator never saw (such as SOURCE:test), --train the data it was trained on (SOURCE:train)"
        )
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(t)
    t_cell, p_cell, q_cell = km.labels_, km.predict(p), km.predict(q)
    z, weight, kept = [], [], 0
    for cell in range(k):
        in_t, in_p, in_q = t[t_cell == cell], p[p_cell == cell], q[q_cell == cell]
        if len(in_p) == 0 or len(in_q) < MIN_CELL_GENERATED:  # no weight, or too few samples to test
            continue
        kept += len(in_q)
        z.append(z_mann_whitney(nearest_distances(in_q, in_t)[0], nearest_distances(in_p, in_t)[0]))
        weight.append(len(in_p))
    if not z:
        raise ValueError(
            f"no cell holds {MIN_CELL_GENERATED} generated samples and a held-out one: give more generated samples (-n)"
        )
    w = np.asarray(weight, np.float64) / len(p)
    d_q, nearest = nearest_distances(q, t)
    threshold = float(np.quantile(d_p, NEAR_QUANTILE))
    order = np.argsort(d_q, kind="stable")[:SUSPECTS]
    return {
        "copying_ct": float(np.dot(w, z) / w.sum()),
        "copying_share": float((d_q < threshold).mean()),
        "copying_cells": len(z),
        "copying_cells_total": k,
        "copying_tested": kept,
        "copying_threshold": threshold,
        "copying_suspects": [{"sample": int(i), "train": int(nearest[i]), "distance": float(d_q[i])} for i in order],
    }


def score_copying(inputs: Inputs) -> dict:
    """The copying test of the generated features against the training (--train) and held-out (--real) ones."""
    o = inputs.options
    return copying_test(inputs.rows("train"), inputs.rows("real"), inputs.rows("fake"), o.copying_cells, o.seed)
