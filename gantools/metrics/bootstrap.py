"""Bootstrap confidence intervals for FID and KID: resample the samples, recompute, take percentiles."""

from __future__ import annotations

import numpy as np

from .fid import frechet_distance
from .kid import KernelPairs, subset_mmd2
from .stats import features_to_stats


def _interval(values, level: float):
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def fid_interval(fake, real, replicates: int, seed: int = 0, level: float = 0.95):
    """FID percentile interval; `real` is a feature matrix, or (mu, sigma) when only statistics exist."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicates):
        mu1, s1 = features_to_stats(fake[rng.integers(0, len(fake), len(fake))])
        if isinstance(real, tuple):
            mu2, s2 = real
        else:
            mu2, s2 = features_to_stats(real[rng.integers(0, len(real), len(real))])
        values.append(frechet_distance(mu1, s1, mu2, s2))
    return _interval(values, level)


def kid_interval(f1, f2, replicates: int, subsets: int, subset_size: int, seed: int = 0, level: float = 0.95):
    """KID percentile interval: each replicate resamples both sides, then averages its subsets."""
    rng = np.random.default_rng(seed)
    pairs = KernelPairs(f1, f2)
    values = [
        subset_mmd2(
            pairs, rng.integers(0, len(f1), len(f1)), rng.integers(0, len(f2), len(f2)), subsets, subset_size, rng
        ).mean()
        for _ in range(replicates)
    ]
    return _interval(values, level)
