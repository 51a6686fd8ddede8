"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)), over splits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .registry import Inputs


def softmax(logits) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def inception_score(probs, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over `splits` consecutive parts, as in the original code (no shuffling)."""
    p = np.asarray(probs, dtype=np.float64)
    n = len(p)
    if n < splits:
        raise ValueError(f"Inception Score with {splits} splits needs at least {splits} samples, got {n}")
    scores = []
    for k in range(splits):
        part = p[k * n // splits : (k + 1) * n // splits]
        py = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(py)), 0.0).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def score_is(inputs: Inputs) -> dict:
    """Inception Score of the generated side's class logits."""
    mean, std = inception_score(softmax(np.concatenate(inputs.fake.logits)))
    return {"is_mean": mean, "is_std": std}
