"""Reference statistics of a data source (`gantools stats`): pytorch-fid's mu/sigma, with provenance."""

from __future__ import annotations

from ..errors import GanToolsError


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
    from .extract import extract_side, extractor_name
    from .features import make_extractor
    from .sides import open_samples
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
            extractor_name(extractor, samples.kind),
            kind=samples.kind,
            device=device,
            inception_weights=inception_weights,
            classifier=classifier,
            precision=precision,
        )
    got = extract_side(
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
