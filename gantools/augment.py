"""Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020; the
probability of ADA, Karras et al. 2020): random translation and cutout, on real and generated images alike.

On a few thousand images a discriminator learns the training images themselves (it scores them above
held-out ones), and the generator is then pulled towards those images, not the distribution. Showing D
only randomly shifted and partly erased images, real and generated alike, takes that away; the same
transforms run on G's images in G's step, so their gradient reaches G. Each transform is applied to an
image with probability p: below 1, D still sees untransformed images, so shifted or erased samples cannot
satisfy it (the augmentation does not leak into the samples); at 1, DiffAugment's own setting, its authors
found these two transforms do not leak either.

The parameters are drawn by the caller from its seeded numpy generator (training stays a pure function
of its seed); the transforms are pure torch functions.
"""

from __future__ import annotations

import numpy as np
import torch

SHIFT, CUTOUT = 1 / 8, 1 / 2  # DiffAugment's ratios: shifts of up to 1/8 of the side, a square of half the side


def _largest_shift(h: int, w: int) -> tuple[int, int]:
    return int(h * SHIFT + 0.5), int(w * SHIFT + 0.5)


def draw_params(rng: np.random.Generator, n: int, size: tuple[int, int], p: float) -> np.ndarray:
    """[n, 4] int: (dy, dx, cutout row, cutout column) per image; zero shift and a cutout row of -size (off the
    image) where a transform is not applied."""
    h, w = size
    sy, sx = _largest_shift(h, w)
    shift = np.stack([rng.integers(-sy, sy + 1, n), rng.integers(-sx, sx + 1, n)], axis=1)
    shift *= (rng.random(n) < p)[:, None]
    corner = np.stack([rng.integers(0, h, n), rng.integers(0, w, n)], axis=1) - np.array([h, w]) // 4
    corner[rng.random(n) >= p] = -h  # a square that lies wholly above the image erases nothing
    return np.concatenate([shift, corner], axis=1).astype(np.int64)


def augment(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Images [n, c, h, w] translated by (dy, dx), zero-filled (mid-grey in [-1, 1]), then a square of half the
    side set to zero at (row, column): both as DiffAugment does them, differentiable in x."""
    n, _, h, w = x.shape
    sy, sx = _largest_shift(h, w)
    padded = torch.nn.functional.pad(x, (sx, sx, sy, sy))
    rows = torch.arange(h, device=x.device)[None, :] + sy - params[:, 0:1]  # [n, h]
    cols = torch.arange(w, device=x.device)[None, :] + sx - params[:, 1:2]  # [n, w]
    batch = torch.arange(n, device=x.device)[:, None, None]
    shifted = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    ch, cw = int(h * CUTOUT + 0.5), int(w * CUTOUT + 0.5)
    r = torch.arange(h, device=x.device)[None, :] - params[:, 2:3]
    c = torch.arange(w, device=x.device)[None, :] - params[:, 3:4]
    inside = ((r >= 0) & (r < ch))[:, :, None] & ((c >= 0) & (c < cw))[:, None, :]
    keep = (~inside).to(x.dtype)[:, None]
    return (shifted * keep).contiguous(memory_format=torch.channels_last)
