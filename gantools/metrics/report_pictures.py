"""The pictures of a score report, gathered from the scored sides: the first samples, their nearest real
neighbours, and the generated samples nearest to the training data beside those training samples."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .extract import Extracted
    from .sides import Samples


REPORT_SAMPLES = {"image": 64, "points": 2500}  # samples a score report shows
REPORT_NEIGHBOURS = (8, 4)  # generated samples shown, and their nearest real neighbours each


def score_pictures(
    result: dict,
    fake: Samples,
    fake_x: Extracted,
    real_side,
    f_fake,
    f_real,
    batch_size: int,
    train_side: Samples | None = None,
) -> dict:
    """score_report's pictures of a finished score record: the first scored samples and, for images, their
    nearest real neighbours and the copying test's suspects beside their training samples."""
    from ..data import true_modes
    from ..plots import image_grid, samples_picture

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
    return {
        "samples_picture_img": picture,
        "points": fake.kind != "image",
        "neighbours_img": grid,
        "suspects_img": suspects,
    }


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
