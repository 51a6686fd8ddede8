"""Discriminator accuracy two ways: the exported discriminator, and a fresh classifier (C2ST).

`roc_auc` is the Mann-Whitney U statistic with average ranks for ties, so it
equals the area under the ROC curve without building the curve.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .registry import Inputs


def roc_auc(positive, negative) -> float:
    """P(score of a random positive > score of a random negative), ties counted half."""
    pos, neg = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    from scipy.stats import rankdata  # scipy.stats is slow to import: only when used

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


TREE_DIM = 1024  # up to this many dimensions (points, pixels of images up to 32 x 32) C2ST uses trees
C2ST_FOLDS = 5


def c2st(real, fake, seed: int = 0, folds: int = C2ST_FOLDS) -> dict:
    """Classifier two-sample test (Lopez-Paz & Oquab 2017) with every sample it is given: accuracy of telling
    real from generated, each sample predicted once by a classifier that never saw it.

    Every real sample and as many generated ones (a seeded subset of the larger side), in seeded, stratified
    k-fold cross-validation: k classifiers, each trained on k-1 folds and scoring the fold it did not see, so
    all 2n samples are tested, not a held-out half. 0.5 means indistinguishable; the 95% Wilson interval is
    over those 2n predictions. The classifier suits the features: gradient-boosted trees up to TREE_DIM
    dimensions (points, pixels), which see off-grid values and non-linear differences that linear models miss;
    L2 logistic regression on standardised features above that (Inception's 2,048), where trees are slow.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if folds < 2:
        raise ValueError(f"C2ST cross-validates over at least 2 folds, got {folds}")
    n = min(len(real), len(fake))
    if n < max(10, folds):
        raise ValueError(f"C2ST needs at least {max(10, folds)} samples per side, got {n}")
    rng = np.random.default_rng(seed)

    def rows(side):
        return side if len(side) == n else side[np.sort(rng.choice(len(side), n, replace=False))]

    x = np.concatenate([rows(real), rows(fake)])
    x = x.reshape(len(x), -1)
    y = np.repeat([1, 0], n)
    correct = 0
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        if x.shape[1] <= TREE_DIM:
            clf = HistGradientBoostingClassifier(random_state=seed)
        else:
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000))
        clf.fit(x[train], y[train])
        correct += int((clf.predict(x[test]) == y[test]).sum())
    low, high = wilson_interval(correct, 2 * n)
    return {
        "c2st_accuracy": correct / (2 * n),
        "c2st_ci_low": low,
        "c2st_ci_high": high,
        "c2st_folds": folds,
        "c2st_n": n,
    }


def score_disc(inputs: Inputs) -> dict:
    """The exported discriminator's accuracy and AUC over both sides."""
    real, fake = np.concatenate(inputs.real.disc_logits), np.concatenate(inputs.fake.disc_logits)
    return disc_metrics(real, fake, inputs.disc.threshold)


def score_c2st(inputs: Inputs) -> dict:
    """The C2ST of the two sides' feature rows; says when fewer generated samples limit its power."""
    import warnings

    f_real, f_fake = inputs.rows("real"), inputs.rows("fake")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's convergence notices
        out = c2st(f_real, f_fake, inputs.options.seed, inputs.options.c2st_folds)
    if len(f_fake) < len(f_real):
        inputs.warn(
            f"C2ST used {len(f_fake)} of the {len(f_real)} real samples, as many as were generated: "
            "give -n at least --n-real for its full power"
        )
    return out
