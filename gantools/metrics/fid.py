"""Fréchet distance between two Gaussians, fast and stable in float64.

tr sqrt(S1 S2) is computed as the sum of the square roots of the eigenvalues
of the symmetric PSD matrix L^T S2 L, where S1 = L L^T (L^T S2 L is similar
to S1 S2, so the eigenvalues are the same). L is S1's Cholesky factor, or its
symmetric square root when S1 is singular (fewer samples than dimensions).
Eigenvalues without eigenvectors, no scipy sqrtm: many times faster, and
never complex.
"""

from __future__ import annotations

import numpy as np

from ..errors import GanToolsError


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise GanToolsError(f"FID: statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
                            f"sigma {s1.shape} vs {s2.shape}")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    try:
        factor = np.linalg.cholesky(s1)
    except np.linalg.LinAlgError:  # singular S1
        factor = _psd_sqrt(s1)
    eig = np.linalg.eigvalsh(factor.T @ s2 @ factor)
    # eigenvalues within rounding of zero (singular covariances: dead features, n < d) count as zero, so
    # that their square roots (~1e-7 from 1e-14 of noise) do not make FID depend on summation order
    noise = eig.max(initial=0.0) * len(eig) * np.finfo(np.float64).eps
    tr_covmean = np.sqrt(eig[eig > noise]).sum()
    diff = mu1 - mu2
    # a distance: rounding can take the identical-sets case a hair below zero
    return max(0.0, float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean))
