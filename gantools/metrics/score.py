"""Scoring: the requested metrics' declarations (registry.py) decide what one pass over each side
extracts; then every metric computes its keys from that pass, and the gates judge them.

The flow: validate the arguments, open the sides (sides.py), find what the metrics need (an extractor,
a discriminator, a domain classifier, the training data, the real mixture's modes), extract each side
once (extract.py), run each metric, check the gates (gates.py), and hand the finished record to the
report (report.py) with its pictures (report_pictures.py).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ..errors import GanToolsError
from .gates import GATE_KEYS, check_gate, format_table, parse_gate
from .registry import (
    CLASSIFIER,
    DISCRIMINATOR,
    EXTRACTOR_NEEDS,
    FEATURES,
    LABELS,
    LOGITS,
    METRIC_OF,
    METRICS,
    MIXTURE,
    REGISTRY,
    SAMPLES,
    STATISTICS,
    TRAIN,
    Inputs,
    Metric,
    Options,
    needed,
    requested,
    warn,
)
from .sides import KIND_WORDS, Samples, is_ref_stats, open_samples

__all__ = ["score", "GATE_KEYS", "METRICS", "parse_gate", "format_table"]


def _find_discriminator(samples: Samples, given):
    from ..refine import find_discriminator

    if given is not None:
        return find_discriminator(None, given)
    if samples.generator is None:
        raise GanToolsError(
            "--metrics disc needs a discriminator: score an exported generator (its "
            "NAME.disc.onnx is found beside it) or pass --discriminator FILE"
        )
    return find_discriminator(samples.generator.path, None)


def _find_classifier(samples: Samples, ex, classifier, device: str):
    """The domain classifier that judges classes: the extractor itself when it is one, else --classifier."""
    from .features import make_extractor

    if samples.kind != "image":
        raise GanToolsError("--metrics classes judges images with a domain classifier; 2-D points have --metrics modes")
    if ex is not None and ex.id.startswith("classifier:"):
        clf = ex
    elif classifier is None:
        raise GanToolsError(
            "--metrics classes needs --classifier FILE.onnx (make one with "
            "`gantools train-classifier --data SOURCE -o FILE.onnx`)"
        )
    else:
        clf = make_extractor("classifier", kind="image", device=device, classifier=classifier)
    clf.num_classes = int(clf.metadata["num_classes"])
    g = samples.generator
    if g is not None and g.num_classes and list(g.class_names) != json.loads(clf.metadata["class_names"]):
        raise GanToolsError(
            f"{samples.name} makes classes {', '.join(g.class_names)} but the classifier knows "
            f"{', '.join(json.loads(clf.metadata['class_names']))}: give a classifier of the same data"
        )
    return clf


def _check_counts(chosen: list[Metric], options: Options, sides: list[Samples]) -> None:
    """Refuse, before any extraction, sample counts a metric cannot work with."""
    for metric in chosen:
        least = metric.least(options)
        short = [s for s in sides if s.count < least]
        if short:
            raise GanToolsError(
                f"--metrics {metric.name} needs at least {least} samples on each side; {short[0].name} "
                f"has {short[0].count}: give more samples (-n/--n-real) or drop {metric.name}"
            )


def _check_arguments(
    metrics: list[str], options: Options, gates, *, n, n_real, batch_size, classifier, extractor, train, real, report
) -> None:
    """Refuse arguments that cannot work together, before anything is read."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise GanToolsError(f"--metrics takes a comma-separated list of {', '.join(METRICS)}; got {unknown or 'none'}")
    for name, value, low in (
        ("-n", n, 1),
        ("--n-real", n_real, 1),
        ("--batch-size", batch_size, 1),
        ("--seed", options.seed, 0),
        ("--bootstrap", options.bootstrap, 0),
        ("--c2st-folds", options.c2st_folds, 2),
    ):
        if value is not None and value < low:
            raise GanToolsError(f"{name} must be at least {low}, got {value}")
    for _, key, _ in gates:
        if METRIC_OF[key] not in metrics:
            raise GanToolsError(f"a gate is set on {key}, but --metrics does not include {METRIC_OF[key]}")
    needs = needed(requested(metrics))
    if classifier is not None and extractor != "classifier" and CLASSIFIER not in needs:
        raise GanToolsError(
            "--classifier is used by --extractor classifier and --metrics classes; add one of them or drop --classifier"
        )
    if (TRAIN in needs) != (train is not None):
        users = ", ".join(m for m in metrics if TRAIN in REGISTRY[m].needs)
        raise GanToolsError(
            f"--metrics {users} needs --train SOURCE, the data the generator was trained on"
            if train is None
            else "--train is used by --metrics copying; add copying to --metrics or drop --train"
        )
    if train is not None and str(train) == str(real):
        raise GanToolsError(
            f"--train and --real are both {real}: the copying test compares distances to the training data with "
            "those of held-out data (such as --train SOURCE:train --real SOURCE:test)"
        )
    if options.copying_cells is not None and options.copying_cells < 1:
        raise GanToolsError(f"--copying-cells must be at least 1, got {options.copying_cells}")
    if options.bootstrap and not any(REGISTRY[m].bootstrap for m in metrics):
        with_intervals = " and ".join(m.name for m in REGISTRY.values() if m.bootstrap)
        raise GanToolsError(f"--bootstrap gives intervals on {with_intervals}; add one of them to --metrics or drop it")
    if real is None:
        raise GanToolsError("--real is needed: a data source, an exported generator or reference statistics")
    if report is not None and not str(report).lower().endswith((".html", ".htm")):
        raise GanToolsError(f"--report must name an .html file, got {report}")


def _shape_words(side_shape) -> str:
    return "x".join(map(str, side_shape))


def score(
    source,
    real=None,
    metrics=("fid",),
    *,
    n: int | None = None,
    n_real: int | None = None,
    seed: int = 0,
    extractor: str | None = None,
    inception_weights=None,
    classifier=None,
    discriminator=None,
    device: str = "auto",
    batch_size: int = 64,
    bootstrap: int = 0,
    gates=(),
    image_size: int | None = None,
    k_pr: int = 3,
    k_dc: int = 5,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    c2st_folds: int = 5,
    train=None,
    copying_cells: int | None = None,
    cache: bool = True,
    progress: bool = True,
    report=None,
    skip_bad_images: bool = False,
    precision: str = "fp32",
) -> dict | None:
    """Score SOURCE against REAL; return the flat result dict (metrics, n, extractor, gates, passed).

    Under torchrun the ranks extract disjoint shards and rank 0 computes the metrics: it returns the
    result, the other ranks None.
    """
    from ..distributed import current
    from .extract import extract_side, extractor_name

    t0 = time.perf_counter()
    metrics = list(dict.fromkeys(metrics))
    options = Options(seed, bootstrap, k_pr, k_dc, kid_subsets, kid_subset_size, c2st_folds, copying_cells)
    _check_arguments(
        metrics,
        options,
        gates,
        n=n,
        n_real=n_real,
        batch_size=batch_size,
        classifier=classifier,
        extractor=extractor,
        train=train,
        real=real,
        report=report,
    )
    chosen = requested(metrics)
    needs = needed(chosen)
    fake = open_samples(source, n, seed, image_size, device, skip_bad_images)
    ref = None
    real_side: Samples | None = None
    if is_ref_stats(real):
        from .stats import load_ref_stats

        ref = load_ref_stats(real)
        needs_real = [m.name for m in chosen if not m.reference_ok]
        if needs_real:
            raise GanToolsError(
                f"{', '.join(needs_real)} need real samples, not statistics: give --real a "
                f"data source instead of {real}"
            )
        real_shape, real_count = ref["sample_shape"], ref["n"]
    else:
        real_side = open_samples(real, n_real, seed + 1, image_size, device, skip_bad_images)
        real_shape, real_count = real_side.sample_shape, real_side.count
        if real_side.kind != fake.kind:
            raise GanToolsError(
                f"{source} holds {KIND_WORDS[fake.kind]} but {real} holds "
                f"{KIND_WORDS[real_side.kind]}; score samples against real data of the same kind"
            )
    train_side = None
    if train is not None:
        train_side = open_samples(train, None, seed + 2, image_size, device, skip_bad_images)
        if train_side.kind != fake.kind or tuple(train_side.sample_shape) != tuple(real_shape):
            raise GanToolsError(
                f"--train {train} holds {KIND_WORDS[train_side.kind]} of shape "
                f"{_shape_words(train_side.sample_shape)} but --real {real} "
                f"{_shape_words(real_shape)}: give both splits of the same data"
            )
    _check_counts(chosen, options, [fake] + ([real_side] if real_side is not None else []))
    featured = bool(needs & EXTRACTOR_NEEDS)
    ex = None
    world = current()
    if featured:
        from .features import known_id, make_extractor

        name = extractor_name(extractor, fake.kind)
        if ref is not None and world.main:
            _check_ref_id(ref, known_id(name, precision), real)  # before building a model it would refuse
        with world.local_main_first():  # one Inception export per machine
            ex = make_extractor(
                name,
                kind=fake.kind,
                device=device,
                inception_weights=inception_weights,
                classifier=classifier,
                need_logits=LOGITS in needs,
                precision=precision,
            )
    if ref is not None and ex is not None and world.main:
        _check_ref(ref, ex, real)
    differ = bool(real_shape) and tuple(real_shape) != tuple(fake.sample_shape)
    if differ and ex is not None and ex.id == "raw":
        raise GanToolsError(
            f"--extractor raw compares samples value by value, but {source} has shape "
            f"{_shape_words(fake.sample_shape)} and {real} {_shape_words(real_shape)}: make them match "
            "(--image-size sets the size), or use --extractor inception"
        )
    if fake.kind == "image" and differ and world.main:
        warn(
            f"{source} has images of shape {_shape_words(fake.sample_shape)} but {real} was made from "
            f"{_shape_words(real_shape)}: the extractor resizes both, but scores of different sizes or channels "
            "compare more than the generator; pass --image-size to match them"
        )
    mixture = None
    if MIXTURE in needs:
        from ..data import true_modes

        mixture = true_modes(real_side.source) if real_side else None
        if mixture is None or fake.kind != "points":
            users = ", ".join(m.name for m in chosen if MIXTURE in m.needs)
            raise GanToolsError(f"--metrics {users} scores 2-D points against --real ring or --real grid")
    classify = _find_classifier(fake, ex, classifier, device) if CLASSIFIER in needs else None
    disc = _find_discriminator(fake, discriminator) if DISCRIMINATOR in needs else None
    if disc is not None and real_side is not None and tuple(disc.sample_shape) != tuple(real_side.sample_shape):
        raise GanToolsError(
            f"the discriminator takes samples of shape {tuple(disc.sample_shape)}, but {real} has "
            f"{tuple(real_side.sample_shape)}: pass --image-size"
        )

    from .report_pictures import REPORT_SAMPLES

    neighbours = report is not None and fake.kind == "image" and featured and real_side is not None

    def keep_rows(side: Samples) -> bool:
        return FEATURES in needs or neighbours or any(m.keep_rows(options, side.count) for m in chosen)

    common: dict[str, Any] = {"batch_size": batch_size, "progress": progress, "cache": cache}
    fake_x = extract_side(
        fake,
        ex,
        stats=STATISTICS in needs,
        features=keep_rows(fake),
        logits=LOGITS in needs,
        raw=SAMPLES in needs,
        disc=disc,
        classify=classify,
        labels=LABELS in needs,
        keep_first=0 if report is None else REPORT_SAMPLES[fake.kind],
        **common,
    )
    real_x = None
    if real_side is not None:
        real_x = extract_side(
            real_side,
            ex if needs & {STATISTICS, FEATURES} or neighbours else None,
            stats=STATISTICS in needs,
            features=keep_rows(real_side),
            logits=False,
            raw=False,
            disc=disc,
            classify=classify,
            **common,
        )
    train_x = None
    if train_side is not None:
        train_x = extract_side(train_side, ex, stats=False, features=True, logits=False, raw=False, **common)
    if not world.main:
        return None

    inputs = Inputs(fake_x, real_x, train_x, ref, options, disc=disc, classifier=classify, mixture=mixture)
    result: dict = {}
    for metric in chosen:
        result.update(_guarded(lambda metric=metric: metric.run(inputs)))
    checked = [check_gate(op, key, limit, result[key]) for op, key, limit in gates]
    result.update(
        n=fake.count,
        n_real=real_count,
        extractor=ex.id if ex is not None else None,
        source=str(source),
        real=str(real),
        seconds=round(time.perf_counter() - t0, 3),
        world_size=world.size,
        gates=checked,
        passed=all(g["passed"] for g in checked),
    )
    if report is not None:
        from ..report import score_report
        from .report_pictures import score_pictures

        f_fake, f_real = inputs.rows("fake"), inputs.rows("real")
        pictures = score_pictures(
            result, fake, fake_x, real_side, f_fake if neighbours else None, f_real, batch_size, train_side
        )
        score_report(result, report, **pictures)
    return result


def _guarded(compute):
    try:
        return compute()
    except ValueError as exc:  # too few samples for k-NN / C2ST: say so, as a user error
        raise GanToolsError(str(exc)) from None


def _check_ref_id(ref: dict, ex_id: str | None, real) -> None:
    """Refuse statistics made with another extractor than `ex_id` (None: not known yet)."""
    from .features import INCEPTION_ID

    built_with = ref["extractor"] or INCEPTION_ID  # pytorch-fid's files carry no id: Inception pool3
    if ex_id is not None and built_with != ex_id:
        raise GanToolsError(
            f"{real} was built with the {built_with} extractor, but this score uses {ex_id}: "
            f"rebuild it with `gantools stats` and the same --extractor and --precision"
        )


def _check_ref(ref: dict, ex, real) -> None:
    _check_ref_id(ref, ex.id, real)
    if ref["weights_sha256"] and ex.weights_sha256 and ref["weights_sha256"] != ex.weights_sha256:
        print(
            f"gantools: warning: {real} was built from other weights files of the same network "
            f"({ref['weights_sha256'][:12]} vs {ex.weights_sha256[:12]})",
            file=sys.stderr,
        )
