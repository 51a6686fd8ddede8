"""Pictures for people: contact sheets of images, scatter plots of points, loss curves.

Drawn with Pillow alone (no plotting library to install), written atomically.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .files import atomic_path

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


def save_png(img: Image.Image, path) -> None:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


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
        sheet[top:top + ch, left:left + cw] = pixels[i]
    return Image.fromarray(sheet)


def _frame(lo, hi, size, margin):
    """A function mapping data coordinates to pixel coordinates of a square plot."""
    span = np.maximum(hi - lo, 1e-9)

    def to_px(p):
        u = (p - lo) / span
        return margin + u[..., 0] * (size - 2 * margin), size - margin - u[..., 1] * (size - 2 * margin)

    return to_px


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


def scatter_plot(points: np.ndarray, centers: np.ndarray | None = None, sigma: float | None = None,
                 size: int = 512) -> Image.Image:
    """2-D points as dots (blue) over the true modes: red centres inside 3-sigma circles, equal axes."""
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    both = pts if centers is None else np.concatenate([pts, centers])
    lo, hi = both.min(axis=0), both.max(axis=0)
    mid, half = (lo + hi) / 2, 0.55 * max(float((hi - lo).max()), 1e-3)  # one scale for both axes
    to_px = _frame(mid - half, mid + half, size, 20)
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([20, 20, size - 20, size - 20], outline=(200, 200, 200))
    if centers is not None:
        cx, cy = to_px(np.asarray(centers, dtype=np.float64))
        radius = 3 * sigma * (size - 40) / (2 * half) if sigma else 0.0
        for x, y in zip(cx, cy):
            if radius:
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=(253, 224, 221),
                             outline=(214, 39, 40))
    xs, ys = to_px(pts)
    for x, y in zip(xs, ys):
        draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=COLORS[0])
    if centers is not None:
        for x, y in zip(cx, cy):
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=COLORS[3])
    return img


def loss_plot(steps, series: dict, size=(720, 400)) -> Image.Image:
    """Curves of each named series against `steps`, with the value range written on the axis."""
    w, h = size
    left, right, top, bottom = 70, 20, 30, 40
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    steps = np.asarray(steps, dtype=np.float64)
    values = [np.asarray(v, dtype=np.float64) for v in series.values()]
    finite = np.concatenate([v[np.isfinite(v)] for v in values] or [np.zeros(1)])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    s0, s1 = (float(steps.min()), float(steps.max())) if steps.size else (0.0, 1.0)
    s1 = s1 if s1 > s0 else s0 + 1

    def px(s, v):
        return left + (s - s0) / (s1 - s0) * (w - left - right), top + (hi - v) / (hi - lo) * (h - top - bottom)

    draw.rectangle([left, top, w - right, h - bottom], outline=(120, 120, 120))
    if lo < 0 < hi:
        draw.line([px(s0, 0), px(s1, 0)], fill=(220, 220, 220))
    for i, (name, v) in enumerate(zip(series, values)):
        color = COLORS[i % len(COLORS)]
        ok = np.isfinite(v)
        pts = [px(s, val) for s, val in zip(steps[ok], v[ok])]
        if len(pts) > 1:
            draw.line(pts, fill=color, width=2)
        draw.text((left + 10 + 120 * i, 8), name, fill=color)
    draw.text((4, top - 4), f"{hi:.3g}", fill="black")
    draw.text((4, h - bottom - 8), f"{lo:.3g}", fill="black")
    draw.text((left, h - bottom + 6), f"step {s0:.0f}", fill="black")
    draw.text((w - right - 90, h - bottom + 6), f"step {s1:.0f}", fill="black")
    return img
