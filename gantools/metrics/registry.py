"""Every metric `gantools score` knows, declared in one place.

A declaration says what the metric needs from the scoring pass (NEEDS below), the JSON keys it reports,
the key a gate on its bare name means, the fewest samples it works with, and the function, in the
metric's own module, that turns the pass's inputs into its keys. `score` reads these declarations to
decide what to extract and what to refuse; it never branches on a metric's name. Adding a metric is its
module (the math and a `score_*` function of `Inputs`) and one entry in REGISTRY.

This module imports nothing heavy: the CLI and the report read it for names and keys.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# What a metric may need from the scoring pass.
STATISTICS = "statistics"  # mean and covariance of each side's extractor features (a reference .npz will do)
FEATURES = "features"  # every extractor feature row of the generated and the real side
LOGITS = "logits"  # the extractor's class logits of the generated side (Inception's 1,008 classes)
SAMPLES = "samples"  # the generated samples themselves (2-D points)
MIXTURE = "mixture"  # a real side that is a known Gaussian mixture (ring, grid), to know its modes
DISCRIMINATOR = "discriminator"  # the generator's exported discriminator, run on both sides
CLASSIFIER = "classifier"  # a domain classifier, run on both sides' images
LABELS = "labels"  # the class each generated sample was made for, when the generator is conditional
TRAIN = "train"  # the extractor features of the data the generator was trained on (--train)
NEEDS = (STATISTICS, FEATURES, LOGITS, SAMPLES, MIXTURE, DISCRIMINATOR, CLASSIFIER, LABELS, TRAIN)
EXTRACTOR_NEEDS = frozenset({STATISTICS, FEATURES, LOGITS, TRAIN})  # needs that run the feature extractor


@dataclass(frozen=True)
class Options:
    """The metrics' own settings (score's keyword arguments of the same names)."""

    seed: int = 0
    bootstrap: int = 0
    k_pr: int = 3
    k_dc: int = 5
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    c2st_folds: int = 5
    copying_cells: int | None = None


def _always(options: Options) -> int:
    return 1


def _never(options: Options, count: int) -> bool:
    return False


def warn(text: str) -> None:
    print(f"gantools: warning: {text}", file=sys.stderr)


@dataclass
class Inputs:
    """What one scoring pass extracted, handed to each metric's score function.

    `fake`, `real` and `train` are the sides' Extracted records (real is None when --real is reference
    statistics, then `ref` holds them); `disc` and `classifier` are the models run on both sides.
    """

    fake: Any
    real: Any
    train: Any
    ref: dict | None
    options: Options
    disc: Any = None
    classifier: Any = None
    mixture: tuple | None = None
    warn: Callable[[str], None] = warn
    _rows: dict = field(default_factory=dict, repr=False)

    def rows(self, side: str):
        """Every feature row of 'fake', 'real' or 'train' as one array (joined once, shared by the metrics),
        or None when none were kept."""
        import numpy as np

        if side not in self._rows:
            extracted = getattr(self, side)
            self._rows[side] = (
                np.concatenate(extracted.features) if extracted is not None and extracted.features else None
            )
        return self._rows[side]


@dataclass(frozen=True)
class Metric:
    name: str
    keys: tuple[str, ...]  # JSON keys, each one a gate may name
    needs: frozenset[str]
    compute: str  # "module:function" in gantools.metrics, imported when the metric runs
    alias: str | None = None  # the key a gate on the bare metric name means
    least: Callable[[Options], int] = _always  # fewest samples per side it works with
    reference_ok: bool = False  # can take reference statistics as the real side
    bootstrap: bool = False  # --bootstrap gives it confidence intervals
    keep_rows: Callable[[Options, int], bool] = _never  # a side of `count` samples keeps its feature rows
    details: tuple[str, ...] = ()  # further JSON keys it may report, which no gate names

    def run(self, inputs: Inputs) -> dict:
        module, function = self.compute.split(":")
        return getattr(importlib.import_module(f"gantools.metrics.{module}"), function)(inputs)


FID_FEW_ROWS = 4096  # a side with fewer samples keeps its rows: FID then solves the smaller n x n problem

REGISTRY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(
            "fid",
            ("fid",),
            frozenset({STATISTICS}),
            "fid:score_fid",
            least=lambda o: 2,
            reference_ok=True,
            bootstrap=True,
            keep_rows=lambda o, count: o.bootstrap > 0 or count < FID_FEW_ROWS,
            details=("fid_ci_low", "fid_ci_high"),
        ),
        Metric(
            "kid",
            ("kid_mean", "kid_std"),
            frozenset({FEATURES}),
            "kid:score_kid",
            alias="kid_mean",
            least=lambda o: 2,
            bootstrap=True,
            details=("kid_ci_low", "kid_ci_high"),
        ),
        Metric(
            "is",
            ("is_mean", "is_std"),
            frozenset({LOGITS}),
            "inception_score:score_is",
            alias="is_mean",
            reference_ok=True,
        ),
        Metric(
            "prdc",
            ("precision", "recall", "density", "coverage"),
            frozenset({FEATURES}),
            "prdc:score_prdc",
            least=lambda o: max(o.k_pr, o.k_dc) + 1,
        ),
        Metric(
            "modes",
            ("modes", "hq_fraction", "reverse_kl"),
            frozenset({SAMPLES, MIXTURE}),
            "modes:score_modes",
        ),
        Metric(
            "disc",
            ("disc_accuracy", "disc_auc"),
            frozenset({DISCRIMINATOR}),
            "discriminator:score_disc",
            alias="disc_accuracy",
        ),
        Metric(
            "c2st",
            ("c2st_accuracy",),
            frozenset({FEATURES}),
            "discriminator:score_c2st",
            alias="c2st_accuracy",
            least=lambda o: max(10, o.c2st_folds),
            details=("c2st_ci_low", "c2st_ci_high", "c2st_folds", "c2st_n"),
        ),
        Metric(
            "classes",
            ("class_max_dev", "class_accuracy"),
            frozenset({CLASSIFIER, LABELS}),
            "classes:score_classes",
        ),
        Metric(
            "copying",
            ("copying_ct", "copying_share"),
            frozenset({FEATURES, TRAIN}),
            "copying:score_copying",
            alias="copying_ct",
            details=("copying_cells", "copying_cells_total", "copying_tested", "copying_threshold", "copying_suspects"),
        ),
    )
}
METRICS = tuple(REGISTRY)
GATE_KEYS = tuple(key for m in REGISTRY.values() for key in m.keys)
METRIC_OF = {key: m.name for m in REGISTRY.values() for key in m.keys}
ALIASES = {m.name: m.alias for m in REGISTRY.values() if m.alias}


def requested(metrics) -> list[Metric]:
    """The declarations of the named metrics, in the order asked."""
    return [REGISTRY[name] for name in metrics]


def needed(metrics: list[Metric]) -> frozenset[str]:
    """Everything the given metrics need, together."""
    return frozenset().union(*(m.needs for m in metrics))
