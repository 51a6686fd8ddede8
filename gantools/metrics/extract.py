"""One pass over a side's batches that feeds every consumer the requested metrics need."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import GanToolsError

if TYPE_CHECKING:
    from .sides import Samples
    from .stats import StreamingStats


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


def extractor_name(extractor: str | None, kind: str) -> str:
    """--extractor, else the default for the samples: inception for images, raw for points."""
    return extractor or ("inception" if kind == "image" else "raw")


def extract_side(
    samples: Samples,
    extractor,
    *,
    stats: bool,
    features: bool,
    logits: bool,
    raw: bool,
    disc=None,
    classify=None,
    labels: bool = False,
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
        if labels and y is not None:
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
