"""Pictures for people: contact sheets of images, and plots drawn with matplotlib.

Contact sheets are pixel arrays assembled with numpy and Pillow. Curves and
scatter plots are matplotlib figures (Agg backend, imported only when a plot
is drawn, so the CLI starts fast), rendered to PIL images, so every caller
gets the same kind of picture and writes it atomically.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from .files import atomic_path

SMOOTHING = 0.9  # weight of the running mean in the smoothed curves


def save_png(img: Image.Image, path) -> None:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def save_animation(frames: list[Image.Image], path, frame_ms: int = 120) -> None:
    """A looping animation: a GIF, or an animated PNG (full colour) when `path` ends in .png."""
    fmt = "PNG" if str(path).lower().endswith(".png") else "GIF"
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format=fmt, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)


def labelled_rows(x: np.ndarray, labels: list[str]) -> Image.Image:
    """Rows of images ([rows, steps, C, H, W] in [0, 1]) as one sheet, each row's label on its left."""
    from PIL import ImageDraw

    rows, steps = x.shape[:2]
    sheet = image_grid(x.reshape(rows * steps, *x.shape[2:]), ncols=steps)
    draw = ImageDraw.Draw(sheet)
    width = max(int(draw.textlength(label)) for label in labels) + 8
    out = Image.new("RGB", (sheet.width + width, sheet.height), "white")
    out.paste(sheet, (width, 0))
    draw = ImageDraw.Draw(out)
    row_height = sheet.height / rows
    for i, label in enumerate(labels):
        draw.text((4, (i + 0.5) * row_height - 5), label, fill="black")
    return out


def image_grid(x: np.ndarray, ncols: int | None = None, min_cell: int = 48, pad: int = 2) -> Image.Image:
    """Float NCHW images in [0, 1] -> one contact sheet; small images are upscaled (nearest)."""
    n, c, h, w = x.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    scale = max(1, math.ceil(min_cell / max(h, w)))
    ch, cw = h * scale, w * scale
    sheet = np.full((nrows * (ch + pad) + pad, ncols * (cw + pad) + pad, 3), 255, dtype=np.uint8)
    pixels = np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    if c == 1:
        pixels = np.repeat(pixels, 3, axis=3)
    pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
    for i in range(n):
        r, q = divmod(i, ncols)
        top, left = pad + r * (ch + pad), pad + q * (cw + pad)
        sheet[top : top + ch, left : left + cw] = pixels[i]
    return Image.fromarray(sheet)


def samples_picture(x: np.ndarray, labels=None, num_classes: int = 0, modes=None) -> Image.Image:
    """What a person wants to see of samples from a generator in [-1, 1].

    Images: a contact sheet, one row per class when the samples have labels of
    every class. Points: a scatter plot over the true modes (`modes` = (centres,
    sigma)) and their 3-sigma circles, the "high quality" zone of the mode metrics.
    """
    if x.ndim == 4:
        counts = np.bincount(labels, minlength=num_classes) if labels is not None and num_classes else None
        if counts is not None and counts.min() > 0:
            per_class = int(counts.min())
            rows = [x[labels == k][:per_class] for k in range(num_classes)]
            return image_grid((np.concatenate(rows) + 1) / 2, ncols=per_class)
        return image_grid((x + 1) / 2)
    centers, sigma = modes if modes is not None else (None, None)
    return scatter_plot(x, centers, sigma)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, works without a display
    import matplotlib.pyplot as plt

    return plt


def _to_image(fig) -> Image.Image:
    """Render a matplotlib figure to an RGB PIL image and free it."""
    plt = _pyplot()
    fig.canvas.draw()
    img = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
    plt.close(fig)
    return img


def scatter_plot(
    points: np.ndarray,
    centers: np.ndarray | None = None,
    sigma: float | None = None,
    size: float = 5.5,
    paths: np.ndarray | None = None,
    marks: np.ndarray | None = None,
) -> Image.Image:
    """2-D samples as dots over the true modes: red centres inside their 3-sigma circles, equal axes; and
    `paths` ([rows, steps, 2], latent walks) as lines from a circle to a square, `marks` ([rows, 2]) on them."""
    plt = _pyplot()
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    if centers is not None:
        centers = np.asarray(centers, dtype=np.float64)
    if centers is not None and sigma is not None:
        for i, c in enumerate(centers):
            ax.add_patch(
                plt.Circle(
                    c,
                    3 * sigma,
                    facecolor="#fde0dd",
                    edgecolor="#d62728",
                    lw=0.8,
                    zorder=1,
                    label="3σ of a mode" if i == 0 else None,
                )
            )
    ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.5, color="#1f77b4", lw=0, zorder=2, label=f"{len(pts)} samples")
    if centers is not None:
        ax.scatter(
            centers[:, 0], centers[:, 1], s=40, marker="+", lw=1, color="#d62728", zorder=3, label="mode centres"
        )
    if paths is not None:
        for i, path in enumerate(np.asarray(paths, dtype=np.float64)[:, :, :2]):
            colour = f"C{i % 10}"
            ax.plot(path[:, 0], path[:, 1], "-", lw=1, color=colour, zorder=4, label="latent walks" if i == 0 else None)
            ax.plot(*path[0], "o", ms=4, color=colour, zorder=5)
            ax.plot(*path[-1], "s", ms=4, color=colour, zorder=5)
    if marks is not None:
        m = np.asarray(marks, dtype=np.float64)
        ax.scatter(m[:, 0], m[:, 1], s=50, marker="*", color="black", zorder=6)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    return _to_image(fig)


def smooth(values, weight: float = SMOOTHING) -> np.ndarray:
    """Exponential moving average with bias correction (TensorBoard's smoothing), NaNs carried through."""
    out, acc, norm = [], 0.0, 0.0
    for v in np.asarray(values, dtype=np.float64):
        if np.isfinite(v):
            acc, norm = weight * acc + (1 - weight) * v, weight * norm + (1 - weight)
        out.append(acc / norm if norm else np.nan)
    return np.array(out)


def _spans_decades(values) -> bool:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return v.size > 1 and v.min() > 0 and v.max() / v.min() > 100


def _curves(ax, steps, series: dict, ylabel: str, log: bool | None = None) -> None:
    """Raw (faint) and smoothed lines of each series on one axis; log y when asked or when they span decades."""
    for i, (name, values) in enumerate(series.items()):
        color = f"C{i}"
        ax.plot(steps, values, color=color, alpha=0.25, lw=1)
        ax.plot(steps, smooth(values), color=color, lw=2, label=f"{name} (smoothed)")
    everything = np.concatenate([np.asarray(v, dtype=np.float64) for v in series.values()])
    if log or (log is None and _spans_decades(everything)):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, framealpha=0.9)


def training_curves(rows: list[dict], log: bool | None = None) -> Image.Image:
    """Losses and D outputs of a run's log.jsonl rows: two panels sharing the step axis."""
    plt = _pyplot()
    steps = [r["step"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5), dpi=100, sharex=True)
    _curves(top, steps, {"D loss": [r["d_loss"] for r in rows], "G loss": [r["g_loss"] for r in rows]}, "loss", log)
    top.set_title("losses (faint: each logged mean; bold: smoothed)", fontsize=10)
    _curves(
        bottom,
        steps,
        {"D(real)": [r["d_real"] for r in rows], "D(fake)": [r["d_fake"] for r in rows]},
        "mean discriminator logit",
        log=False,
    )
    bottom.axhline(0, color="0.5", lw=0.8, ls="--")
    bottom.set_title("discriminator outputs: above 0 means 'real'", fontsize=10)
    fig.tight_layout()
    return _to_image(fig)


def metric_trend(
    labels: list[str], values: list[float], name: str, limit: tuple[str, float] | None = None
) -> Image.Image:
    """One metric over successive score records (e.g. one per commit), with its gate as a line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    x = np.arange(len(values))
    ax.plot(x, values, marker="o", color="C0", label=name)
    if limit is not None:
        op, threshold = limit
        ax.axhline(threshold, color="C3", ls="--", lw=1, label=f"gate: {'≤' if op == 'max' else '≥'} {threshold:g}")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(name)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _to_image(fig)
