"""Class balance and conditional accuracy, judged by a domain classifier.

A generator that drops or favours classes can still score a fair FID; the
histogram of the classes a classifier assigns to its samples says so
directly. For a conditional generator, the share of samples classified as
the class they were asked for says whether the condition is obeyed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .registry import Inputs


def class_metrics(fake_pred, real_pred, num_classes: int, requested=None) -> dict:
    """Largest gap between the fake and real class frequencies (a fraction), and the accuracy on requested classes.

    `fake_pred` and `real_pred` are the classifier's predicted classes; the real
    side is classified by the same classifier so that its own errors cancel.
    `requested` holds the classes a conditional generator was asked for.
    """
    fake = np.bincount(np.asarray(fake_pred), minlength=num_classes) / len(fake_pred)
    real = np.bincount(np.asarray(real_pred), minlength=num_classes) / len(real_pred)
    out = {"class_max_dev": float(np.abs(fake - real).max())}
    if requested is not None:
        out["class_accuracy"] = float((np.asarray(fake_pred) == np.asarray(requested)).mean())
    return out


def score_classes(inputs: Inputs) -> dict:
    """Class metrics of both sides as the domain classifier sees them."""
    fake, real = inputs.fake, inputs.real
    return class_metrics(
        np.concatenate(fake.classes),
        np.concatenate(real.classes),
        inputs.classifier.num_classes,
        np.concatenate(fake.labels) if fake.labels else None,
    )
