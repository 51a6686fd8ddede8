"""Streaming float64 mean and covariance, and reference-statistics files.

Batches are merged with Chan et al.'s pairwise update of the mean and the
centred scatter matrix, so no more than one batch of features is ever held
and the result equals `numpy.cov` on all features (to float64 rounding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import ARRAY_READ_ERRORS
from ..errors import GanToolsError
from ..files import atomic_path


class StreamingStats:
    """Running mean and covariance (ddof=1) of feature rows."""

    def __init__(self, dim: int):
        self.n = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.scatter = np.zeros((dim, dim), dtype=np.float64)

    def update(self, batch) -> None:
        x = np.asarray(batch, dtype=np.float64)
        m = len(x)
        if m == 0:
            return
        batch_mean = x.mean(axis=0)
        centred = x - batch_mean
        delta = batch_mean - self.mean
        total = self.n + m
        self.scatter += centred.T @ centred + np.outer(delta, delta) * (self.n * m / total)
        self.mean += delta * (m / total)
        self.n = total

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise GanToolsError(f"covariance needs at least 2 samples, got {self.n}")
        return self.scatter / (self.n - 1)


def features_to_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of a whole feature matrix, via the streaming path."""
    features = np.asarray(features)
    acc = StreamingStats(features.shape[1])
    acc.update(features)
    return acc.mean, acc.cov


def save_ref_stats(path, mu, sigma, extractor: str, weights_sha256: str, n: int, sample_shape=()) -> None:
    """An .npz with pytorch-fid's keys (mu, sigma) plus what made them (extractor, weights, count, sample shape)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                mu=mu,
                sigma=sigma,
                extractor=np.array(extractor),
                weights_sha256=np.array(weights_sha256),
                n=np.array(n),
                sample_shape=np.array(sample_shape, dtype=np.int64),
            )


def load_ref_stats(path) -> dict:
    """Read reference statistics; files from pytorch-fid (mu, sigma only) are taken as Inception pool3."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ARRAY_READ_ERRORS as exc:
        raise GanToolsError(f"cannot read reference statistics {path}: {exc}") from None
    if "mu" not in arrays or "sigma" not in arrays:
        raise GanToolsError(f"{path} has no mu and sigma arrays")
    mu, sigma = arrays["mu"], arrays["sigma"]
    if not all(np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer) for a in (mu, sigma)):
        raise GanToolsError(f"{path}: mu and sigma must be numbers, got {mu.dtype} and {sigma.dtype}")
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise GanToolsError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not fit together")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise GanToolsError(f"{path}: mu or sigma holds NaN or Inf; rebuild it with `gantools stats`")
    if not np.allclose(sigma, sigma.T, rtol=1e-5, atol=1e-8 * max(1.0, float(np.abs(sigma).max()))):
        raise GanToolsError(
            f"{path}: sigma is not symmetric, so it is not a covariance; rebuild it with `gantools stats`"
        )
    if (np.diag(sigma) < 0).any():
        raise GanToolsError(
            f"{path}: sigma has negative variances on its diagonal, so it is not a covariance; "
            "rebuild it with `gantools stats`"
        )
    return {
        "mu": mu,
        "sigma": sigma,
        "extractor": str(arrays["extractor"]) if "extractor" in arrays else None,
        "weights_sha256": str(arrays["weights_sha256"]) if "weights_sha256" in arrays else None,
        "n": int(arrays["n"]) if "n" in arrays else None,
        "sample_shape": tuple(int(v) for v in arrays["sample_shape"]) if "sample_shape" in arrays else None,
    }
