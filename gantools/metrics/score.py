"""Scoring: features once per source, then every requested metric from them, then the gates.

A side to score is anything a data source takes (built-in name, folder,
.npz/.npy, MNIST IDX) or an exported generator (.onnx, sampled on the fly);
the real side may also be a reference-statistics .npz (FID only).
Generated samples are rounded to 8-bit pixels before feature extraction,
exactly as if they had been written to PNG files and read back, so scoring
a model and scoring the folder it generates give the same numbers.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import GanToolsError

if TYPE_CHECKING:
    from ..runtime import OnnxGenerator
    from .stats import StreamingStats

# Each metric and the JSON keys it reports (the keys a gate may name).
METRIC_KEYS = {
    "fid": ("fid",),
    "kid": ("kid_mean", "kid_std"),
    "is": ("is_mean", "is_std"),
    "prdc": ("precision", "recall", "density", "coverage"),
    "modes": ("modes", "hq_fraction", "reverse_kl"),
    "disc": ("disc_accuracy", "disc_auc"),
    "c2st": ("c2st_accuracy",),
    "classes": ("class_max_dev", "class_accuracy"),
    "copying": ("copying_ct", "copying_share"),
}
METRICS = tuple(METRIC_KEYS)
GATE_KEYS = tuple(key for keys in METRIC_KEYS.values() for key in keys)
METRIC_OF = {key: metric for metric, keys in METRIC_KEYS.items() for key in keys}
FEATURE_METRICS = ("fid", "is", "kid", "prdc", "c2st", "copying")  # need extractor features of SOURCE
PAIRED_METRICS = ("kid", "prdc", "c2st", "copying")  # need every feature of both sides, not just statistics
FID_FEW_ROWS = 4096  # sides with fewer samples keep their features: FID may then solve an n x n problem
ALIASES = {
    "kid": "kid_mean",
    "is": "is_mean",
    "c2st": "c2st_accuracy",
    "disc": "disc_accuracy",
    "copying": "copying_ct",
}
DEFAULT_GENERATED = 10_000
DEFAULT_POINTS = 2_500  # the mode-collapse literature scores 2,500 samples
_KIND_WORDS = {"image": "images", "points": "points"}


@dataclass
class Samples:
    """One side of a comparison: where its batches come from and what they are."""

    name: str
    kind: str
    sample_shape: tuple
    count: int
    batches: Callable[..., Iterator]  # (batch_size, start, stop) -> (x in [0, 1] NCHW or points, labels or None)
    seed: int = 0
    generator: OnnxGenerator | None = None
    source: Any = None  # the data source it reads, when it is one


@dataclass
class Extracted:
    stats: StreamingStats | None = None
    features: list = field(default_factory=list)
    logits: list = field(default_factory=list)
    raw: list = field(default_factory=list)
    disc_logits: list = field(default_factory=list)
    classes: list = field(default_factory=list)  # the classifier's predicted class of each sample
    labels: list = field(default_factory=list)  # the class each sample was made for (conditional generators)
    first: list = field(default_factory=list)  # (x, y) batches of the first samples, for a report's pictures


def _quantize(x_model: np.ndarray) -> np.ndarray:
    """[-1, 1] model output -> [0, 1] on the 8-bit grid a PNG round trip would give."""
    return np.rint(np.clip((x_model + 1.0) / 2.0, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0


def is_ref_stats(spec) -> bool:
    from ..data import ARRAY_READ_ERRORS

    p = Path(str(spec))
    if p.suffix.lower() != ".npz" or not p.is_file():
        return False
    try:
        with np.load(p, allow_pickle=False) as z:
            return "mu" in z.files and "sigma" in z.files
    except ARRAY_READ_ERRORS:
        return False


def open_samples(
    spec,
    n: int | None = None,
    seed: int = 0,
    image_size: int | None = None,
    device: str = "auto",
    skip_bad_images: bool = False,
) -> Samples:
    """A data source or an exported generator as a Samples side."""
    spec = str(spec)
    if spec.lower().endswith(".onnx"):
        from ..generate import sample_batch
        from ..runtime import OnnxGenerator

        g = OnnxGenerator(spec, device)  # --image-size resizes data sources only
        count = n if n is not None else DEFAULT_GENERATED if g.kind == "image" else DEFAULT_POINTS

        def generated(batch_size, start=0, stop=count):
            for first in range(start, stop, batch_size):
                _, y, x = sample_batch(g, seed, first, min(batch_size, stop - first))
                yield (_quantize(x) if g.kind == "image" else x.astype(np.float32)), y

        return Samples(spec, g.kind, g.sample_shape, count, generated, seed=seed, generator=g)
    from ..data import load_source

    src = load_source(spec, image_size, skip_bad_images, stream=True)  # each sample is read once, in order
    if hasattr(src, "__len__"):
        count = len(src) if n is None else min(n, len(src))
    else:  # a mixture, sampled on the fly
        count = DEFAULT_POINTS if n is None else n
    return Samples(
        spec,
        src.kind,
        tuple(src.sample_shape),
        count,
        lambda batch_size, start=0, stop=count: src.batches(batch_size, count, seed, start, stop),
        seed=seed,
        source=src,
    )


def parse_gate(op: str, text: str) -> tuple[str, str, float]:
    """'fid=40' -> ('max', 'fid', 40.0); the metric name must be one the JSON reports."""
    name, sep, value = text.partition("=")
    name = ALIASES.get(name.strip(), name.strip())
    if not sep or name not in GATE_KEYS:
        raise GanToolsError(f"--{op} takes METRIC=VALUE with METRIC one of {', '.join(GATE_KEYS)}; got {text!r}")
    try:
        bound = float(value)
    except ValueError:
        bound = math.nan
    if math.isnan(bound):
        raise GanToolsError(f"--{op} {text}: {value!r} is not a number")
    return op, name, bound


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


def _extract(
    samples: Samples,
    extractor,
    *,
    stats: bool,
    features: bool,
    logits: bool,
    raw: bool,
    disc=None,
    classify=None,
    batch_size: int,
    progress: bool,
    cache: bool = False,
    keep_first: int = 0,
) -> Extracted:
    """One pass over a side's batches, feeding every consumer that the requested metrics need.

    With cache, the features of a data source (not a generator) come from, or go to, the feature cache.
    Under torchrun each rank takes its shard of the batches, and rank 0 ends with everything (see _merge_ranks).
    """
    from ..distributed import current
    from ..progress import progress_bar
    from .features import CachedExtractor, RawExtractor
    from .stats import StreamingStats

    world = current()
    start, stop = world.shard(samples.count, batch_size)
    cached = None
    if (
        cache
        and not logits
        and samples.source is not None
        and hasattr(samples.source, "fingerprint")
        and extractor is not None
        and not isinstance(extractor, RawExtractor)
    ):
        extractor = cached = CachedExtractor(
            extractor, samples.source.fingerprint(samples.count, samples.seed), first_row=start
        )
    out = Extracted()
    total = math.ceil((stop - start) / batch_size)
    hit = cached is not None and cached.cached is not None
    label = "samples" if extractor is None else "features (cached)" if hit else "features"
    batches: Iterator
    if hit and not (raw or disc or classify or keep_first):  # only the cached features are wanted: decode nothing
        batches = (
            (np.empty((min(batch_size, stop - first), 0), np.float32), None) for first in range(start, stop, batch_size)
        )
    else:
        batches = samples.batches(batch_size, start, stop)
    for x, y in progress_bar(
        batches, enabled=progress and world.main, total=total, desc=f"{label} {Path(samples.name).name}", unit="batch"
    ):
        kept = sum(len(fx) for fx, _ in out.first)
        if kept < keep_first and world.main:  # rank 0's shard starts at sample 0
            out.first.append((x[: keep_first - kept], None if y is None else y[: keep_first - kept]))
        if raw:
            out.raw.append(x)
        if disc is not None:
            if disc.num_classes and y is None:
                raise GanToolsError(f"the discriminator is conditional, but {samples.name} has no labels")
            out.disc_logits.append(disc(x * 2.0 - 1.0 if samples.kind == "image" else x, y))
        if classify is not None:
            out.classes.append(classify(x)[1].argmax(axis=1))
            if y is not None:
                out.labels.append(y)
        if extractor is not None:
            f, lg = extractor(x)
            if stats:
                if out.stats is None:
                    out.stats = StreamingStats(f.shape[1])
                out.stats.update(f)
            if features:
                out.features.append(f)
            if logits:
                out.logits.append(lg)
    if world.size > 1:
        fill = cached is not None and world.sum([cached.cached is None]) > 0  # some rank missed the cache
        shares = world.gather(cached.rows) if cached is not None and fill else None  # every rank's rows, on rank 0
        out = _merge_ranks(out, world)
        if cached is not None and shares:
            cached.save([rows for share in shares for rows in share])
    elif cached is not None:
        cached.save(cached.rows)
    return out


def _merge_ranks(part: Extracted, world) -> Extracted:
    """Every rank's Extracted shard -> the whole side's, on rank 0 (statistics on every rank).

    Statistics are merged from float64 sufficient statistics summed over ranks: count and sum give the
    mean, then each rank's outer products about that mean give the scatter. Per-sample arrays are
    gathered in rank order, which is sample order.
    """
    from .stats import StreamingStats

    dims = world.sum([0 if part.stats is None else len(part.stats.mean), part.stats is not None])
    merged = Extracted()
    if dims[1]:
        d = int(round(dims[0] / dims[1]))
        local = part.stats or StreamingStats(d)
        counted = world.sum(np.concatenate([[local.n], local.n * local.mean]))
        merged.stats = StreamingStats(d)
        merged.stats.n, merged.stats.mean = int(round(counted[0])), counted[1:] / counted[0]
        # outer products about the global mean: no cancellation of large means
        delta = local.mean - merged.stats.mean
        merged.stats.scatter = world.sum(local.scatter + local.n * np.outer(delta, delta))
    lists = ("features", "logits", "raw", "disc_logits", "classes", "labels")
    shares = world.gather({name: np.concatenate(getattr(part, name)) for name in lists if getattr(part, name)})
    for share in shares or []:
        for name, array in share.items():
            getattr(merged, name).append(array)
    return merged


def _check_counts(metrics, fake: Samples, real_side: Samples | None, k_pr: int, k_dc: int, folds: int) -> None:
    """Refuse, before any extraction, sample counts a metric cannot work with."""
    need = {"kid": 2, "prdc": max(k_pr, k_dc) + 1, "c2st": max(10, folds), "fid": 2}
    sides = [fake] + ([real_side] if real_side is not None else [])
    for metric, least in need.items():
        short = [s for s in sides if metric in metrics and s.count < least]
        if short:
            raise GanToolsError(
                f"--metrics {metric} needs at least {least} samples on each side; {short[0].name} "
                f"has {short[0].count}: give more samples (-n/--n-real) or drop {metric}"
            )


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

    t0 = time.perf_counter()
    metrics = list(dict.fromkeys(metrics))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise GanToolsError(f"--metrics takes a comma-separated list of {', '.join(METRICS)}; got {unknown or 'none'}")
    for name, value, low in (
        ("-n", n, 1),
        ("--n-real", n_real, 1),
        ("--batch-size", batch_size, 1),
        ("--seed", seed, 0),
        ("--bootstrap", bootstrap, 0),
        ("--c2st-folds", c2st_folds, 2),
    ):
        if value is not None and value < low:
            raise GanToolsError(f"{name} must be at least {low}, got {value}")
    for _, key, _ in gates:
        if METRIC_OF[key] not in metrics:
            raise GanToolsError(f"a gate is set on {key}, but --metrics does not include {METRIC_OF[key]}")
    if classifier is not None and extractor != "classifier" and "classes" not in metrics:
        raise GanToolsError(
            "--classifier is used by --extractor classifier and --metrics classes; add one of them or drop --classifier"
        )
    if ("copying" in metrics) != (train is not None):
        raise GanToolsError(
            "--metrics copying needs --train SOURCE, the data the generator was trained on"
            if train is None
            else "--train is used by --metrics copying; add copying to --metrics or drop --train"
        )
    if train is not None and str(train) == str(real):
        raise GanToolsError(
            f"--train and --real are both {real}: the copying test compares distances to the training data with "
            "those of held-out data (such as --train SOURCE:train --real SOURCE:test)"
        )
    if copying_cells is not None and copying_cells < 1:
        raise GanToolsError(f"--copying-cells must be at least 1, got {copying_cells}")
    if bootstrap and not {"fid", "kid"} & set(metrics):
        raise GanToolsError("--bootstrap gives intervals on fid and kid; add one of them to --metrics or drop it")
    if real is None:
        raise GanToolsError("--real is needed: a data source, an exported generator or reference statistics")
    if report is not None and not str(report).lower().endswith((".html", ".htm")):
        raise GanToolsError(f"--report must name an .html file, got {report}")
    fake = open_samples(source, n, seed, image_size, device, skip_bad_images)
    ref = None
    if is_ref_stats(real):
        from .stats import load_ref_stats

        ref = load_ref_stats(real)
        needs_real = [m for m in metrics if m in (*PAIRED_METRICS, "modes", "disc", "classes")]
        if needs_real:
            raise GanToolsError(
                f"{', '.join(needs_real)} need real samples, not statistics: give --real a "
                f"data source instead of {real}"
            )
        real_side, real_shape, real_count = None, ref["sample_shape"], ref["n"]
    else:
        real_side = open_samples(real, n_real, seed + 1, image_size, device, skip_bad_images)
        real_shape, real_count = real_side.sample_shape, real_side.count
        if real_side.kind != fake.kind:
            raise GanToolsError(
                f"{source} holds {_KIND_WORDS[fake.kind]} but {real} holds "
                f"{_KIND_WORDS[real_side.kind]}; score samples against real data of the same kind"
            )
    train_side = None
    if train is not None:
        train_side = open_samples(train, None, seed + 2, image_size, device, skip_bad_images)
        if train_side.kind != fake.kind or tuple(train_side.sample_shape) != tuple(real_shape):
            raise GanToolsError(
                f"--train {train} holds {_KIND_WORDS[train_side.kind]} of shape "
                f"{'x'.join(map(str, train_side.sample_shape))} but --real {real} "
                f"{'x'.join(map(str, real_shape))}: give both splits of the same data"
            )
    _check_counts(metrics, fake, real_side, k_pr, k_dc, c2st_folds)
    featured = any(m in FEATURE_METRICS for m in metrics)
    ex = None
    world = current()
    if featured:
        from .features import known_id, make_extractor

        name = _extractor_name(extractor, fake.kind)
        if ref is not None and world.main:
            _check_ref_id(ref, known_id(name, precision), real)  # before building a model it would refuse
        with world.local_main_first():  # one Inception export per machine
            ex = make_extractor(
                name,
                kind=fake.kind,
                device=device,
                inception_weights=inception_weights,
                classifier=classifier,
                need_logits="is" in metrics,
                precision=precision,
            )
    if ref is not None and ex is not None and world.main:
        _check_ref(ref, ex, real)
    differ = bool(real_shape) and tuple(real_shape) != tuple(fake.sample_shape)
    if differ and ex is not None and ex.id == "raw":
        raise GanToolsError(
            f"--extractor raw compares samples value by value, but {source} has shape "
            f"{'x'.join(map(str, fake.sample_shape))} and {real} "
            f"{'x'.join(map(str, real_shape))}: make them match (--image-size sets the size), "
            "or use --extractor inception"
        )
    if fake.kind == "image" and differ and world.main:
        print(
            f"gantools: warning: {source} has images of shape {'x'.join(map(str, fake.sample_shape))} but {real} "
            f"was made from {'x'.join(map(str, real_shape))}: the extractor resizes both, but scores of "
            "different sizes or channels compare more than the generator; pass --image-size to match them",
            file=sys.stderr,
        )
    mixture = None
    if "modes" in metrics:
        from ..data import true_modes

        mixture = true_modes(real_side.source) if real_side else None
        if mixture is None or fake.kind != "points":
            raise GanToolsError("--metrics modes scores 2-D points against --real ring or --real grid")
    classify = _find_classifier(fake, ex, classifier, device) if "classes" in metrics else None
    disc = _find_discriminator(fake, discriminator) if "disc" in metrics else None
    if disc is not None and real_side is not None and tuple(disc.sample_shape) != tuple(real_side.sample_shape):
        raise GanToolsError(
            f"the discriminator takes samples of shape {tuple(disc.sample_shape)}, but {real} has "
            f"{tuple(real_side.sample_shape)}: pass --image-size"
        )

    neighbours = report is not None and fake.kind == "image" and featured and real_side is not None
    keep = any(m in metrics for m in PAIRED_METRICS) or bootstrap > 0 and "fid" in metrics or neighbours

    def keep_side(side) -> bool:  # FID solves the smaller n x n problem when a side has few rows (fid.py)
        return keep or "fid" in metrics and side.count < FID_FEW_ROWS

    fake_x = _extract(
        fake,
        ex if featured else None,
        stats="fid" in metrics,
        features=keep_side(fake),
        logits="is" in metrics,
        raw="modes" in metrics,
        disc=disc,
        classify=classify,
        batch_size=batch_size,
        progress=progress,
        cache=cache,
        keep_first=0 if report is None else REPORT_SAMPLES[fake.kind],
    )
    real_needs_features = any(m in metrics for m in ("fid", *PAIRED_METRICS)) and ref is None or neighbours
    real_x = None
    if real_side is not None:
        real_x = _extract(
            real_side,
            ex if real_needs_features else None,
            stats="fid" in metrics,
            features=keep_side(real_side),
            logits=False,
            raw=False,
            disc=disc,
            classify=classify,
            batch_size=batch_size,
            progress=progress,
            cache=cache,
        )
    train_x = None
    if train_side is not None:
        train_x = _extract(
            train_side,
            ex,
            stats=False,
            features=True,
            logits=False,
            raw=False,
            batch_size=batch_size,
            progress=progress,
            cache=cache,
        )
    if not world.main:
        return None

    result: dict = {}
    f_fake = np.concatenate(fake_x.features) if fake_x.features else None
    f_real = np.concatenate(real_x.features) if real_x is not None and real_x.features else None
    if "fid" in metrics:
        result.update(_fid(fake_x, real_x, ref, f_fake, f_real, bootstrap, seed))
    if "is" in metrics:
        from .inception_score import inception_score, softmax

        result["is_mean"], result["is_std"] = inception_score(softmax(np.concatenate(fake_x.logits)))
    if "kid" in metrics:
        from .kid import kernel_inception_distance

        result["kid_mean"], result["kid_std"] = kernel_inception_distance(
            f_real, f_fake, kid_subsets, kid_subset_size, seed
        )
        if bootstrap:
            from .bootstrap import kid_interval

            result["kid_ci_low"], result["kid_ci_high"] = kid_interval(
                f_real, f_fake, bootstrap, kid_subsets, kid_subset_size, seed
            )
    if "prdc" in metrics:
        from .prdc import prdc

        result.update(_guarded(lambda: prdc(f_real, f_fake, k_pr, k_dc)))
    if "modes" in metrics:
        from .modes import mode_metrics

        assert mixture is not None  # refused above otherwise
        result.update(mode_metrics(np.concatenate(fake_x.raw), *mixture))
    if "disc" in metrics:
        from .discriminator import disc_metrics

        assert real_x is not None and disc is not None  # "disc" refuses reference statistics above
        result.update(
            disc_metrics(np.concatenate(real_x.disc_logits), np.concatenate(fake_x.disc_logits), disc.threshold)
        )
    if "classes" in metrics:
        from .classes import class_metrics

        assert real_x is not None and classify is not None  # "classes" refuses reference statistics above
        result.update(
            class_metrics(
                np.concatenate(fake_x.classes),
                np.concatenate(real_x.classes),
                classify.num_classes,
                np.concatenate(fake_x.labels) if fake_x.labels else None,
            )
        )
    if "c2st" in metrics:
        from .discriminator import c2st

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's convergence notices
            result.update(_guarded(lambda: c2st(f_real, f_fake, seed, c2st_folds)))
        assert f_real is not None and f_fake is not None  # "c2st" keeps both sides' features
        if len(f_fake) < len(f_real) and world.main:
            print(
                f"gantools: warning: C2ST used {len(f_fake)} of the {len(f_real)} real samples, as many as were "
                "generated: give -n at least --n-real for its full power",
                file=sys.stderr,
            )

    if "copying" in metrics:
        from .copying import copying_test

        assert train_x is not None and f_real is not None and f_fake is not None  # "copying" needs --train
        f_train = np.concatenate(train_x.features)
        result.update(_guarded(lambda: copying_test(f_train, f_real, f_fake, copying_cells, seed)))

    checked = [_check_gate(op, key, limit, result[key]) for op, key, limit in gates]
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
        _write_report(
            report, result, fake, fake_x, real_side, f_fake if neighbours else None, f_real, batch_size, train_side
        )
    return result


REPORT_SAMPLES = {"image": 64, "points": 2500}  # samples a score report shows
REPORT_NEIGHBOURS = (8, 4)  # generated samples shown, and their nearest real neighbours each


def _write_report(
    path,
    result: dict,
    fake: Samples,
    fake_x: Extracted,
    real_side,
    f_fake,
    f_real,
    batch_size: int,
    train_side: Samples | None = None,
) -> None:
    """The score page: table, the first scored samples and, for images, their nearest real neighbours and
    the generated samples nearest to the training data, beside those training samples."""
    from ..data import true_modes
    from ..plots import image_grid, samples_picture
    from ..report import score_report

    x = np.concatenate([fx for fx, _ in fake_x.first])
    labels = [fy for _, fy in fake_x.first]
    y = np.concatenate(labels) if labels and labels[0] is not None else None
    classes = fake.generator.num_classes if fake.generator is not None else 0
    if fake.kind == "image":
        picture = samples_picture(x * 2.0 - 1.0, y, classes)
    else:
        picture = samples_picture(x, modes=true_modes(real_side.source) if real_side else None)
    grid = None
    if f_fake is not None and f_real is not None and len(f_real):
        shown, k = min(REPORT_NEIGHBOURS[0], len(f_fake)), min(REPORT_NEIGHBOURS[1], len(f_real))
        from .prdc import sq_dists, sq_norms

        a, b = f_fake[:shown].astype(np.float32), np.asarray(f_real, np.float32)
        nearest = np.argsort(sq_dists(a, sq_norms(a), b, sq_norms(b)), axis=1)[:, :k]
        real_rows = _rows_of(real_side, sorted(set(nearest.ravel().tolist())), batch_size)
        cells = []
        for i in range(shown):
            cells.append(_as_rgb(x[i : i + 1]))
            cells += [_as_rgb(real_rows[j][None]) for j in nearest[i]]
        grid = image_grid(np.concatenate(cells), ncols=k + 1)
    suspects = None
    if train_side is not None and fake.kind == "image" and result.get("copying_suspects"):
        pairs = [(s["sample"], s["train"]) for s in result["copying_suspects"]]
        made = _rows_of(fake, sorted({i for i, _ in pairs}), batch_size)
        trained = _rows_of(train_side, sorted({j for _, j in pairs}), batch_size)
        suspects = image_grid(
            np.concatenate([_as_rgb(row[None]) for i, j in pairs for row in (made[i], trained[j])]), ncols=2
        )
    score_report(
        result,
        path,
        samples_picture_img=picture,
        points=fake.kind != "image",
        neighbours_img=grid,
        suspects_img=suspects,
    )


def _rows_of(side: Samples, wanted: list[int], batch_size: int) -> dict:
    """{index: sample} of the given indices of a side, read in one pass over its batches."""
    found, start = {}, 0
    todo = iter(wanted)
    nxt = next(todo, None)
    for x, _ in side.batches(batch_size):
        while nxt is not None and nxt < start + len(x):
            found[nxt] = x[nxt - start]
            nxt = next(todo, None)
        start += len(x)
        if nxt is None:
            break
    return found


def _as_rgb(x: np.ndarray) -> np.ndarray:
    return np.repeat(x, 3, axis=1) if x.shape[1] == 1 else x


def _guarded(compute):
    try:
        return compute()
    except ValueError as exc:  # too few samples for k-NN / C2ST: say so, as a user error
        raise GanToolsError(str(exc)) from None


def _extractor_name(extractor: str | None, kind: str) -> str:
    """--extractor, else the default for the samples: inception for images, raw for points."""
    return extractor or ("inception" if kind == "image" else "raw")


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


def _fid(fake_x, real_x, ref, f_fake, f_real, bootstrap: int, seed: int) -> dict:
    from .fid import frechet_distance

    s_fake = fake_x.stats
    mu2, s2 = (ref["mu"], ref["sigma"]) if ref is not None else (real_x.stats.mean, real_x.stats.cov)
    if len(s_fake.mean) != len(mu2):
        raise GanToolsError(f"feature sizes differ: {len(s_fake.mean)} vs {len(mu2)} in the reference")
    smallest = min(s_fake.n, ref["n"] or s_fake.n) if ref is not None else min(s_fake.n, real_x.stats.n)
    if smallest < len(mu2):
        print(
            f"gantools: warning: FID from {smallest} samples, fewer than the {len(mu2)} feature dimensions: "
            "the covariance is singular and FID is biased upwards; compare only at equal sample counts",
            file=sys.stderr,
        )
    out = {"fid": frechet_distance(s_fake.mean, s_fake.cov, mu2, s2, rows1=f_fake, rows2=f_real)}
    if bootstrap:
        from .bootstrap import fid_interval

        out["fid_ci_low"], out["fid_ci_high"] = fid_interval(
            f_fake, (mu2, s2) if f_real is None else f_real, bootstrap, seed
        )
    return out


def _check_gate(op: str, key: str, limit: float, value: float) -> dict:
    ok = value <= limit if op == "max" else value >= limit
    return {"metric": key, "op": op, "threshold": limit, "value": value, "passed": bool(ok)}


def compute_stats(
    source,
    out,
    *,
    n: int | None = None,
    seed: int = 0,
    extractor: str | None = None,
    inception_weights=None,
    classifier=None,
    device: str = "auto",
    batch_size: int = 64,
    image_size: int | None = None,
    cache: bool = True,
    progress: bool = True,
    skip_bad_images: bool = False,
    precision: str = "fp32",
) -> dict | None:
    """Reference statistics of SOURCE written to `out` (pytorch-fid's mu/sigma keys plus provenance).

    Under torchrun the ranks share the extraction and rank 0 writes the file and returns the summary
    (the other ranks None)."""
    from ..distributed import current
    from ..files import check_output, remove_stale_temporaries
    from .features import make_extractor
    from .stats import save_ref_stats

    if not str(out).lower().endswith(".npz"):
        raise GanToolsError(f"-o must name an .npz file (pytorch-fid's format), got {out}")
    check_output(out, "-o", [source])
    world = current()
    if world.main:
        remove_stale_temporaries(out)  # what a killed run left
    samples = open_samples(source, n, seed, image_size, device, skip_bad_images)
    if samples.count < 2:
        raise GanToolsError(f"{source}: statistics need at least 2 samples")
    with world.local_main_first():
        ex = make_extractor(
            _extractor_name(extractor, samples.kind),
            kind=samples.kind,
            device=device,
            inception_weights=inception_weights,
            classifier=classifier,
            precision=precision,
        )
    got = _extract(
        samples,
        ex,
        stats=True,
        features=False,
        logits=False,
        raw=False,
        batch_size=batch_size,
        progress=progress,
        cache=cache,
    )
    if not world.main:
        return None
    stats = got.stats
    assert stats is not None  # extracted with stats=True
    save_ref_stats(out, stats.mean, stats.cov, ex.id, ex.weights_sha256, stats.n, samples.sample_shape)
    return {"out": str(out), "n": stats.n, "extractor": ex.id, "dim": len(stats.mean)}


def format_table(result: dict) -> str:
    """The human-readable result: one metric per line, its gate beside it."""
    gates = {g["metric"]: g for g in result["gates"]}
    spread = {"kid_mean": "kid_std", "is_mean": "is_std"}
    lines = [f"{'metric':16s} {'value':>24s}   gate"]
    for key in GATE_KEYS:
        if key not in result or key in spread.values():
            continue
        text = f"{result[key]:.6g}" + (f" ± {result[spread[key]]:.3g}" if key in spread else "")
        for base in (key, key.removesuffix("_mean"), key.removesuffix("_accuracy")):
            if f"{base}_ci_low" in result:
                text += f" [{result[base + '_ci_low']:.4g}, {result[base + '_ci_high']:.4g}]"
                break
        gate = gates.get(key)
        mark = ""
        if gate:
            sign = "<=" if gate["op"] == "max" else ">="
            mark = f"{sign} {gate['threshold']:g}  {'ok' if gate['passed'] else 'FAIL'}"
        lines.append(f"{key:16s} {text:>24s}   {mark}".rstrip())
    verdict = "passed" if result["passed"] else "FAILED"
    lines.append(
        f"n={result['n']} n_real={result['n_real']} extractor={result['extractor']} "
        f"{result['seconds']:.1f} s: {verdict}"
    )
    return "\n".join(lines)
