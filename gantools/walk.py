"""Latent walks: what a generator's latent space encodes, and how smoothly.

A walk is a row of samples whose latents move from one point to another
(spherically by default: a Gaussian latent's norm stays near sqrt(d) along a
great circle, while a straight line passes through the rarely sampled
centre), or along one coordinate. The recipes' generators are mixtures whose
first latent coordinate picks a component: their walks keep it fixed (within
one component) or cross from one component to another, and say which. A
conditional generator walks the same latents once per class, so the style
stays and the class changes down the rows.

Each walk also gets its smoothness: the distance between neighbouring frames,
as a share of the mean distance between two random samples. A smooth
generator spreads a walk's change over its steps; one with a discontinuity
(a mode boundary, a collapse) makes one large jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from .errors import GanToolsError
from .latents import labels_for, latents_for

DIM_RANGE = 3.0  # --dim moves its coordinate from -3 to 3: 99.7% of a standard normal's mass
RANDOM_PAIRS = 128  # pairs of random samples whose mean distance is a walk's unit


@dataclass
class Walks:
    """Rows of a walk: latents [rows, steps, latent_dim], classes [rows, steps] or None, what each row is."""

    z: np.ndarray
    y: np.ndarray | None
    labels: list[str]
    x: np.ndarray = field(default_factory=lambda: np.empty(0))  # the samples, [rows, steps, *sample_shape]


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Points at fractions t of the great-circle arc from a to b, the norm interpolated linearly
    (a straight line where a and b are (anti)parallel). a, b [d]; t [steps] -> [steps, d]."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / max(na, 1e-12), b / max(nb, 1e-12)
    omega = math.acos(float(np.clip(ua @ ub, -1.0, 1.0)))
    if omega < 1e-6 or math.pi - omega < 1e-6:
        return lerp(a, b, t)
    s = math.sin(omega)
    direction = (np.sin((1 - t) * omega)[:, None] * ua + np.sin(t * omega)[:, None] * ub) / s
    return direction * ((1 - t) * na + t * nb)[:, None]


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return (1 - t)[:, None] * a + t[:, None] * b


def component_of(z0: float, components: int) -> int:
    """The mixture component a first latent coordinate picks (models.LatentMixture: Phi(z0) in [k/M, (k+1)/M))."""
    return min(components - 1, int(NormalDist().cdf(z0) * components))


def component_centre(k: int, components: int) -> float:
    """The first-coordinate value in the middle of component k's probability."""
    return NormalDist().inv_cdf((k + 0.5) / components)


def walk_latents(latent_dim: int, seed: int, pairs: int, steps: int, spherical: bool, mixture: int) -> Walks:
    """`pairs` walks between latent pairs of `seed` (samples 0..2*pairs-1 of `generate --seed`). For a mixture
    of M components the first half of the walks stays in the first end's component, the rest switch
    halfway to another one (the one opposite, when both ends fell in the same)."""
    ends = latents_for(seed, 0, 2 * pairs, latent_dim).astype(np.float64).reshape(pairs, 2, latent_dim)
    t = np.linspace(0.0, 1.0, steps)
    move = slerp if spherical else lerp
    rows, labels = [], []
    for i, (a, b) in enumerate(ends):
        if not mixture:
            rows.append(move(a, b, t))
            labels.append(f"walk {i}")
            continue
        ka = component_of(a[0], mixture)
        if i < (pairs + 1) // 2:
            kb, first = ka, np.full(steps, a[0])
        else:
            kb = component_of(b[0], mixture)
            if kb == ka:
                kb = (ka + mixture // 2) % mixture
                b = np.concatenate([[component_centre(kb, mixture)], b[1:]])
            first = np.where(t < 0.5, a[0], b[0])  # one switch, halfway: no components between are visited
        rows.append(np.concatenate([first[:, None], move(a[1:], b[1:], t)], axis=1))
        labels.append(f"component {ka}" if ka == kb else f"component {ka} -> {kb}")
    return Walks(np.stack(rows).astype(np.float32), None, labels)


def dim_latents(latent_dim: int, seed: int, rows: int, steps: int, dim: int, mixture: int) -> Walks:
    """Coordinate `dim` swept from -DIM_RANGE to DIM_RANGE at `rows` latents of `seed`, the others fixed."""
    if not 0 <= dim < latent_dim:
        raise GanToolsError(f"--dim {dim}: the model's latent has coordinates 0 to {latent_dim - 1}")
    z = np.repeat(latents_for(seed, 0, rows, latent_dim)[:, None, :], steps, axis=1)
    z[:, :, dim] = np.linspace(-DIM_RANGE, DIM_RANGE, steps, dtype=np.float32)
    what = f"z[{dim}] from -3 to 3" + (" (the mixture component)" if mixture and dim == 0 else "")
    return Walks(z, None, [f"{what}, latent {i}" for i in range(rows)])


def with_classes(walks: Walks, num_classes: int, fixed_class: int, class_names: list[str]) -> Walks:
    """A conditional model's walks: the first walk once per class (rows: the class changes, the latents
    stay), then every walk at `fixed_class`."""
    steps = walks.z.shape[1]
    z = np.concatenate([np.repeat(walks.z[:1], num_classes, axis=0), walks.z])
    y = np.concatenate(
        [np.repeat(np.arange(num_classes)[:, None], steps, axis=1), np.full((len(walks.z), steps), fixed_class)]
    )
    labels = [f"{walks.labels[0]}, class {name}" for name in class_names]
    labels += [f"{label}, class {class_names[fixed_class]}" for label in walks.labels]
    return Walks(z, y.astype(np.int64), labels)


def run_walks(model, walks: Walks) -> Walks:
    """The model's samples along each walk, in one batch."""
    rows, steps = walks.z.shape[:2]
    z = walks.z.reshape(rows * steps, -1)
    y = None if walks.y is None else walks.y.reshape(-1)
    x = np.asarray(model(z, y))
    return Walks(walks.z, walks.y, walks.labels, x.reshape(rows, steps, *x.shape[1:]))


def smoothness(model, walks: Walks, seed: int) -> dict:
    """Neighbouring frames' distance along each walk as a share of the mean distance between two random
    samples of the model (seed + 1, random classes): the mean over all steps, and the largest step."""
    z = latents_for(seed + 1, 0, 2 * RANDOM_PAIRS, model.latent_dim)
    y = labels_for(0, 2 * RANDOM_PAIRS, model.num_classes) if model.num_classes else None
    if y is not None:
        y = np.random.default_rng(seed).permutation(y)  # labels_for cycles classes: pair unlike classes too
    r = np.asarray(model(z, y), np.float64).reshape(2 * RANDOM_PAIRS, -1)
    unit = float(np.linalg.norm(r[:RANDOM_PAIRS] - r[RANDOM_PAIRS:], axis=1).mean())
    flat = walks.x.reshape(*walks.x.shape[:2], -1).astype(np.float64)
    step = np.linalg.norm(np.diff(flat, axis=1), axis=2) / max(unit, 1e-12)  # [rows, steps - 1]
    return {
        "step_mean": float(step.mean()),
        "step_max": float(step.max()),
        "rows": [
            {"label": lab, "step_mean": float(s.mean()), "step_max": float(s.max())}
            for lab, s in zip(walks.labels, step, strict=True)
        ],
        "random_distance": unit,
    }


def model_walks(
    model,
    seed: int = 0,
    pairs: int = 8,
    steps: int = 10,
    spherical: bool = True,
    dim: int | None = None,
    fixed_class: int | None = None,
) -> tuple[Walks, dict]:
    """A generator's walks (between latents, or along coordinate `dim`; a conditional model's once per class
    first) with its samples, and their smoothness."""
    mixture = int(model.metadata.get("mixture") or 0)
    if dim is None:
        walks = walk_latents(model.latent_dim, seed, pairs, steps, spherical, mixture)
    else:
        walks = dim_latents(model.latent_dim, seed, pairs, steps, dim, mixture)
    if model.num_classes:
        walks = with_classes(walks, model.num_classes, fixed_class or 0, model.class_names)
    walks = run_walks(model, walks)
    return walks, {"mixture": mixture, **smoothness(model, walks, seed)}


def walk_picture(model, walks: Walks, t: int | None = None):
    """Images: one labelled row per walk. Points: the walks' paths over samples of the model and the modes of
    its built-in data set; `t` marks each walk's frame t (an animation's frame)."""
    from .generate import GRID_POINTS, sample_batch
    from .plots import labelled_rows, scatter_plot

    if model.kind == "image":
        x = walks.x if t is None else walks.x[:, t : t + 1]
        return labelled_rows((x + 1.0) / 2.0, walks.labels)
    from .data import BUILTIN, load_source, true_modes

    data = model.metadata.get("data")
    modes = true_modes(load_source(data)) if data in BUILTIN else None
    centers, sigma = modes if modes is not None else (None, None)
    _, _, background = sample_batch(model, 0, 0, GRID_POINTS)
    return scatter_plot(background, centers, sigma, paths=walks.x, marks=None if t is None else walks.x[:, t])


def animation_frames(model, walks: Walks) -> list:
    """Frames of a looping animation, forth and back along the walks: for images each frame holds every walk's
    current sample in a column, for points the paths with each walk's current point marked."""
    steps = walks.x.shape[1]
    order = list(range(steps)) + list(range(steps - 2, 0, -1))
    return [walk_picture(model, walks, t) for t in order]


def walk(
    model_path,
    out,
    *,
    seed: int = 0,
    pairs: int = 8,
    steps: int = 10,
    spherical: bool = True,
    dim: int | None = None,
    fixed_class: int | None = None,
    gif=None,
    device: str = "auto",
) -> dict:
    """Draw latent walks of an exported generator to `out` (PNG), and `gif` (GIF or animated PNG) when given;
    return what was drawn and its smoothness."""
    from .files import check_output
    from .generate import check_class
    from .plots import save_animation, save_png
    from .runtime import OnnxGenerator

    if not str(out).lower().endswith(".png"):
        raise GanToolsError(f"-o must name a .png file, got {out}")
    if gif is not None and not str(gif).lower().endswith((".gif", ".png")):
        raise GanToolsError(f"--gif must name a .gif (or animated .png) file, got {gif}")
    if gif is not None and str(gif) == str(out):
        raise GanToolsError("--gif and -o name the same file; give the animation a name of its own")
    for flag, path in (("-o", out), ("--gif", gif)):
        check_output(path, flag, [model_path])
    g = OnnxGenerator(model_path, device)
    check_class(g, fixed_class)
    walks, smooth = model_walks(g, seed, pairs, steps, spherical, dim, fixed_class)
    save_png(walk_picture(g, walks), out)
    if gif is not None:
        save_animation(animation_frames(g, walks), gif)
    return {
        "out": str(out),
        "gif": None if gif is None else str(gif),
        "walks": len(walks.labels),
        "steps": steps,
        "spherical": spherical,
        "dim": dim,
        **smooth,
    }
