"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2, cubic polynomial kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .registry import Inputs

# Up to this many samples per side the three kernel matrices are computed once
# and every subset indexes into them, instead of three matmuls per subset.
_PRECOMPUTE_MAX = 4096


def _kernel(a, b, d):
    """k(x, y) = (x.y / d + 1)^3 for all pairs of rows."""
    return (a.astype(np.float64) @ b.astype(np.float64).T / d + 1.0) ** 3


class KernelPairs:
    """MMD^2 between any rows of f1 and any rows of f2."""

    def __init__(self, f1, f2):
        self.f1, self.f2 = np.asarray(f1), np.asarray(f2)
        self.d = self.f1.shape[1]
        self.cached = max(len(self.f1), len(self.f2)) <= _PRECOMPUTE_MAX
        if self.cached:
            self.k11 = _kernel(self.f1, self.f1, self.d)
            self.k22 = _kernel(self.f2, self.f2, self.d)
            self.k12 = _kernel(self.f1, self.f2, self.d)

    def mmd2(self, i, j) -> float:
        """Unbiased MMD^2 of rows i of f1 against rows j of f2 (len(i) == len(j))."""
        if self.cached:
            k_xx, k_yy, k_xy = self.k11[np.ix_(i, i)], self.k22[np.ix_(j, j)], self.k12[np.ix_(i, j)]
        else:
            x, y = self.f1[i], self.f2[j]
            k_xx, k_yy, k_xy = _kernel(x, x, self.d), _kernel(y, y, self.d), _kernel(x, y, self.d)
        m = len(i)
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        return float(within - 2.0 * k_xy.sum() / (m * m))


def subset_mmd2(pairs: KernelPairs, rows1, rows2, subsets: int, subset_size: int, rng) -> np.ndarray:
    """MMD^2 of `subsets` random subsets (without replacement) drawn from the given rows."""
    m = min(subset_size, len(rows1), len(rows2))
    if m < 2:
        raise ValueError("KID needs at least 2 samples per side")
    return np.array(
        [
            pairs.mmd2(rows1[rng.choice(len(rows1), m, replace=False)], rows2[rng.choice(len(rows2), m, replace=False)])
            for _ in range(subsets)
        ]
    )


def kernel_inception_distance(f1, f2, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
    """(mean, std) of MMD^2 over `subsets` random subsets of min(subset_size, n) samples per side."""
    pairs = KernelPairs(f1, f2)
    values = subset_mmd2(
        pairs, np.arange(len(pairs.f1)), np.arange(len(pairs.f2)), subsets, subset_size, np.random.default_rng(seed)
    )
    return float(values.mean()), float(values.std())


def score_kid(inputs: Inputs) -> dict:
    """KID of the two sides' feature rows (+ a bootstrap interval)."""
    o, f_real, f_fake = inputs.options, inputs.rows("real"), inputs.rows("fake")
    out = dict(
        zip(
            ("kid_mean", "kid_std"),
            kernel_inception_distance(f_real, f_fake, o.kid_subsets, o.kid_subset_size, o.seed),
            strict=True,
        )
    )
    if o.bootstrap:
        from .bootstrap import kid_interval

        out["kid_ci_low"], out["kid_ci_high"] = kid_interval(
            f_real, f_fake, o.bootstrap, o.kid_subsets, o.kid_subset_size, o.seed
        )
    return out
