"""Generators and discriminators: the classic MLP GAN and a DCGAN, both optionally conditional.

Every generator maps (z [B, latent_dim], y [B] or None) to samples: images as
[B, C, H, W] in [-1, 1] (tanh), points as [B, D] in data coordinates (linear
output, as in the mode-collapse literature). Every discriminator maps
(x, y or None) to one logit per sample, shape [B].
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .errors import GanToolsError

MODELS = ("mlp", "dcgan")
DCGAN_SIZES = (8, 16, 32, 64)


class MLPGenerator(nn.Module):
    """latent -> 3 x 128 leaky ReLU -> output (the classic GAN of Goodfellow et al.)."""

    def __init__(self, latent_dim, sample_shape, num_classes=0, hidden=128, images=True):
        super().__init__()
        self.sample_shape = tuple(sample_shape)
        self.embed = nn.Embedding(num_classes, num_classes) if num_classes else None
        out = math.prod(self.sample_shape)
        self.net = nn.Sequential(
            nn.Linear(latent_dim + num_classes, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, out),
        )
        self.out_act = nn.Tanh() if images else nn.Identity()

    def forward(self, z, y=None):
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        x = self.out_act(self.net(z))
        return x.reshape(x.shape[0], *self.sample_shape)


class ProjectionDiscriminator(nn.Module):
    """logit = head(h) + <embed(y), h> with h = body(x): conditional by projection (Miyato & Koyama 2018)."""

    def forward(self, x, y=None):
        h = self.body(x)
        logit = self.head(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(y) * h).sum(dim=1)
        return logit


class MLPDiscriminator(ProjectionDiscriminator):
    """input -> 3 x 128 leaky ReLU -> logit."""

    def __init__(self, sample_shape, num_classes=0, hidden=128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(sample_shape), hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(hidden, 1)
        self.embed = nn.Embedding(num_classes, hidden) if num_classes else None


class DCGANGenerator(nn.Module):
    """Linear to 4x4, then transposed-conv x2 upsampling blocks with BatchNorm + ReLU."""

    def __init__(self, latent_dim, sample_shape, num_classes=0, width=64):
        super().__init__()
        channels, size, _ = sample_shape
        n_up = int(math.log2(size // 4))
        ch = width * 2 ** n_up
        self.embed = nn.Embedding(num_classes, 32) if num_classes else None
        self.stem = nn.Sequential(
            nn.Linear(latent_dim + (32 if num_classes else 0), ch * 16, bias=False),
            nn.Unflatten(1, (ch, 4, 4)), nn.BatchNorm2d(ch), nn.ReLU(),
        )
        blocks = []
        for _ in range(n_up):
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(nn.Conv2d(ch, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z, y=None):
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.to_image(self.blocks(self.stem(z)))


class DCGANDiscriminator(ProjectionDiscriminator):
    """Strided convs with leaky ReLU down to 4x4, then a linear logit (+ class projection)."""

    def __init__(self, sample_shape, num_classes=0, width=64):
        super().__init__()
        channels, size, _ = sample_shape
        n_down = int(math.log2(size // 4))
        layers = [nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.2)]
        ch = width
        for _ in range(n_down):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.LeakyReLU(0.2)]
            ch *= 2
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch * 16, 1)
        self.embed = nn.Embedding(num_classes, ch * 16) if num_classes else None


def check_model_fits(model: str, kind: str, sample_shape) -> None:
    """Refuse model/data pairs that cannot work, naming the option to change."""
    if model not in MODELS:
        raise GanToolsError(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    if model == "dcgan":
        if kind != "image":
            raise GanToolsError("--model dcgan needs image data; use --model mlp for 2-D points")
        _, h, w = sample_shape
        if h != w or h not in DCGAN_SIZES:
            raise GanToolsError(
                f"--model dcgan needs square images of size {', '.join(map(str, DCGAN_SIZES))}; "
                f"the data is {h}x{w}: pass --image-size"
            )


def build_models(config: dict):
    """(generator, discriminator) for a resolved training config."""
    shape = tuple(config["sample_shape"])
    k = config["num_classes"] if config["conditional"] else 0
    check_model_fits(config["model"], config["kind"], shape)
    if config["model"] == "mlp":
        g = MLPGenerator(config["latent_dim"], shape, k, config["width"], images=config["kind"] == "image")
        d = MLPDiscriminator(shape, k, config["width"])
    else:
        g = DCGANGenerator(config["latent_dim"], shape, k, config["width"])
        d = DCGANDiscriminator(shape, k, config["width"])
    if config["spectral_norm"]:
        apply_spectral_norm(d)
    return g, d


def apply_spectral_norm(module: nn.Module) -> None:
    """Wrap every conv and linear weight of `module` in spectral normalisation."""
    from torch.nn.utils.parametrizations import spectral_norm

    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Conv2d, nn.Linear, nn.Embedding)):
            setattr(module, name, spectral_norm(child))
        else:
            apply_spectral_norm(child)
