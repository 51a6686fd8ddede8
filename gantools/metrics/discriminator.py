"""Discriminator accuracy two ways: the exported discriminator, and a fresh classifier (C2ST).

`roc_auc` is the Mann-Whitney U statistic with average ranks for ties, so it
equals the area under the ROC curve without building the curve.
"""

from __future__ import annotations

import math

import numpy as np


def roc_auc(positive, negative) -> float:
    """P(score of a random positive > score of a random negative), ties counted half."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    from scipy.stats import rankdata  # scipy.stats takes 1.6 s to import: only when used

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def disc_metrics(real_logits, fake_logits, threshold: float) -> dict:
    """Accuracy of "real iff logit > threshold" over both sets, and the ROC AUC."""
    real, fake = np.asarray(real_logits).ravel(), np.asarray(fake_logits).ravel()
    correct = (real > threshold).sum() + (fake <= threshold).sum()
    return {"disc_accuracy": float(correct / (len(real) + len(fake))), "disc_auc": roc_auc(real, fake)}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


LOW_DIM = 64


def c2st(real, fake, seed: int = 0) -> dict:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017): held-out accuracy of real-vs-fake.

    Equal numbers of real and fake rows and a seeded, stratified half/half
    split. The classifier suits the features: gradient-boosted trees for up to
    64 dimensions (2-D points, small images), where linear and small neural
    models miss non-linear differences; L2 logistic regression on standardised
    features above that (Inception, classifier features), where trees are slow
    and weak. 0.5 means indistinguishable.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    n = min(len(real), len(fake))
    if n < 10:
        raise ValueError(f"C2ST needs at least 10 samples per side, got {n}")
    x = np.concatenate([real[rng.choice(len(real), n, replace=False)], fake[rng.choice(len(fake), n, replace=False)]])
    x = x.reshape(len(x), -1)
    y = np.repeat([1, 0], n)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    if x.shape[1] <= LOW_DIM:
        clf = HistGradientBoostingClassifier(random_state=seed)
    else:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
    clf.fit(x_train, y_train)
    correct = int((clf.predict(x_test) == y_test).sum())
    low, high = wilson_interval(correct, len(y_test))
    return {"c2st_accuracy": correct / len(y_test), "c2st_ci_low": low, "c2st_ci_high": high}
