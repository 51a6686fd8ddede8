"""Mode metrics for the 2-D Gaussian mixtures of the mode-collapse literature (VEEGAN, PacGAN).

A sample is high quality when it lies within 3 sigma of its nearest mode.
A mode is captured when at least a fifth of its expected share of the samples
are high-quality samples registered to it (PacGAN: 20 of the 100 expected
per mode of 2,500 samples on the 25-mode grid). The reverse KL compares the
histogram of registered (high-quality) samples over modes with the uniform
distribution of the true mixture: 0 is perfect, log K is one mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .registry import Inputs


def mode_metrics(points, centers, sigma: float, capture_fraction: float = 0.2) -> dict:
    x = np.asarray(points, dtype=np.float64)
    c = np.asarray(centers, dtype=np.float64)
    d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    nearest = d2.argmin(axis=1)
    hq = np.sqrt(d2[np.arange(len(x)), nearest]) < 3.0 * sigma
    k = len(c)
    counts = np.bincount(nearest[hq], minlength=k)
    captured = counts >= max(1.0, capture_fraction * len(x) / k)
    if counts.sum():
        p = counts / counts.sum()
        nz = p > 0
        reverse_kl = float((p[nz] * np.log(p[nz] * k)).sum())
    else:
        reverse_kl = float("inf")
    return {"modes": int(captured.sum()), "hq_fraction": float(hq.mean()), "reverse_kl": reverse_kl}


def score_modes(inputs: Inputs) -> dict:
    """Mode metrics of the generated points over the real mixture's modes."""
    assert inputs.mixture is not None  # score refuses "modes" without a known mixture
    return mode_metrics(np.concatenate(inputs.fake.raw), *inputs.mixture)
