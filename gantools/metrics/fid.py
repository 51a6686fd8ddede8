"""Fréchet distance between two Gaussians, fast and stable in float64.

tr sqrt(S1 S2) is the sum of the square roots of the eigenvalues of a
symmetric PSD matrix similar to S1 S2, so no matrix square root (scipy's
sqrtm, pytorch-fid's way) and never complex numbers:

- d x d form: L^T S2 L with S1 = L L^T (Cholesky), built with BLAS's
  symmetric and triangular products; or, when S1 is singular (fewer samples
  than dimensions), with L its symmetric square root.
- n x n form, when a side's feature rows are given and there are fewer of
  them than dimensions: with S1 = F^T F (F the centred rows over sqrt(n-1)),
  F S2 F^T has the same non-zero eigenvalues, and costs n^2 d instead of d^3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import GanToolsError

if TYPE_CHECKING:
    from .registry import Inputs


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _similar_eigenvalues(s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Eigenvalues of L^T S2 L (S1 = L L^T): those of S1 S2. Reads the lower triangles of S1 and S2 only."""
    from scipy.linalg import blas, eigvalsh, lapack

    factor, info = lapack.dpotrf(s1, lower=1, clean=1)
    if info != 0:  # singular S1
        factor = _psd_sqrt(np.tril(s1) + np.tril(s1, -1).T)
    product = blas.dsymm(1.0, s2, factor, side=0, lower=1)  # S2 L
    if info == 0:
        product = blas.dtrmm(1.0, factor, product, side=0, lower=1, trans_a=1, overwrite_b=1)  # L^T (S2 L)
    else:
        product = factor.T @ product
    return eigvalsh(product, lower=True, overwrite_a=True, check_finite=False, driver="evd")


def _row_factor(rows, mu: np.ndarray) -> np.ndarray:
    """F with F^T F = the rows' covariance (ddof 1): the centred rows over sqrt(n - 1)."""
    rows = np.asarray(rows, np.float64)
    if rows.ndim != 2 or rows.shape[1] != len(mu) or len(rows) < 2:
        raise GanToolsError(f"FID: feature rows of shape {rows.shape} do not fit statistics of size {len(mu)}")
    return (rows - mu) / np.sqrt(len(rows) - 1)


def frechet_distance(mu1, sigma1, mu2, sigma2, rows1=None, rows2=None) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2).

    rows1 / rows2 (optional): the feature rows behind (mu1, sigma1) / (mu2, sigma2); when a side has fewer
    rows than dimensions, the smaller n x n problem is solved instead (same value, to rounding).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = len(mu1)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (d, d):
        raise GanToolsError(
            f"FID: statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}"
        )
    sides = [
        (len(r), _row_factor(r, mu), other)
        for r, mu, other in ((rows1, mu1, s2), (rows2, mu2, s1))
        if r is not None and len(r) < d
    ]
    if sides:
        _, f, other = min(sides, key=lambda side: side[0])
        eig = np.linalg.eigvalsh(f @ (other + other.T) / 2 @ f.T)
    else:
        eig = _similar_eigenvalues(s1, s2)
    # eigenvalues within rounding of zero (singular covariances: dead features, n < d) count as zero, so
    # that their square roots (~1e-7 from 1e-14 of noise) do not make FID depend on summation order
    noise = eig.max(initial=0.0) * d * np.finfo(np.float64).eps
    tr_covmean = np.sqrt(eig[eig > noise]).sum()
    diff = mu1 - mu2
    # a distance: rounding can take the identical-sets case a hair below zero
    return max(0.0, float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean))


def score_fid(inputs: Inputs) -> dict:
    """FID of the generated side against the real side or the reference statistics (+ a bootstrap interval)."""
    s_fake, ref, real = inputs.fake.stats, inputs.ref, inputs.real
    mu2, s2 = (ref["mu"], ref["sigma"]) if ref is not None else (real.stats.mean, real.stats.cov)
    if len(s_fake.mean) != len(mu2):
        raise GanToolsError(f"feature sizes differ: {len(s_fake.mean)} vs {len(mu2)} in the reference")
    smallest = min(s_fake.n, ref["n"] or s_fake.n) if ref is not None else min(s_fake.n, real.stats.n)
    if smallest < len(mu2):
        inputs.warn(
            f"FID from {smallest} samples, fewer than the {len(mu2)} feature dimensions: the covariance is "
            "singular and FID is biased upwards; compare only at equal sample counts"
        )
    f_fake, f_real = inputs.rows("fake"), inputs.rows("real")
    out = {"fid": frechet_distance(s_fake.mean, s_fake.cov, mu2, s2, rows1=f_fake, rows2=f_real)}
    if inputs.options.bootstrap:
        from .bootstrap import fid_interval

        out["fid_ci_low"], out["fid_ci_high"] = fid_interval(
            f_fake, (mu2, s2) if f_real is None else f_real, inputs.options.bootstrap, inputs.options.seed
        )
    return out
