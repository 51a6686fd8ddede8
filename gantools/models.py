"""Generators and discriminators: the classic MLP GAN and a DCGAN, both optionally conditional.

Every generator maps (z [B, latent_dim], y [B] or None) to samples: images as
[B, C, H, W] in [-1, 1] (tanh), points as [B, D] in data coordinates (linear
output, as in the mode-collapse literature). Every discriminator maps
(x, y or None) to one logit per sample, shape [B].

Point models work in standardised coordinates inside: the generator ends and
the discriminator starts with a fixed affine map (buffers from the data's
centre and scale), so one recipe suits a ring of radius 1 and a grid of
width 8, and the exported files still speak data coordinates.

A generator may also be a mixture (`mixture` = M components sharing their
weights): one latent coordinate picks the component, a learned embedding
tells the network which. A continuous map of a connected latent space cannot
put mass on separate modes without a trail of samples between them
(Khayatkhoei et al. 2018, "Disconnected manifold learning"); a discrete pick
can, as in MGAN (Hoang et al. 2018).

Images with few grey levels (scikit-learn's digits have 17) get generators
whose last step rounds to those levels (`levels`), with a straight-through
gradient in training: a model of discrete data outputs discrete values, and
no pixel-level test can tell its samples by off-grid values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import GanToolsError

MODELS = ("mlp", "dcgan")
DCGAN_SIZES = (8, 16, 28, 32, 64)


def dcgan_layout(size: int) -> tuple[int, int]:
    """(side of the smallest feature map, number of x2 resolution steps): 4 -> ... -> 2^k for powers of two,
    7 -> 14 -> 28 for MNIST's 28 (its images are not resized to 32, as in every MNIST paper)."""
    base = 7 if size % 7 == 0 else 4
    return base, int(math.log2(size // base))


class Affine(nn.Module):
    """x * scale + shift with fixed (non-trained) buffers: the standardisation of point data."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, scale: float, shift):
        super().__init__()
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))

    def forward(self, x):
        return x * self.scale + self.shift


class RoundToLevels(nn.Module):
    """[-1, 1] -> the nearest of `levels` evenly spaced values; identity gradient (straight-through)."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels

    def forward(self, x):
        u = (x + 1.0) * (0.5 * (self.levels - 1))
        k = (u - u.detach()) + torch.round(u)  # exactly the integer level forward, gradient 1 backward
        return k * (2.0 / (self.levels - 1)) - 1.0


MIXTURE_EMBEDDING = 16


class LatentMixture(nn.Module):
    """z -> [z without its first coordinate, embedding of component k], k picked by z[:, 0].

    Component k holds the z_0 with k/M <= Phi(z_0) < (k+1)/M: each has probability
    exactly 1/M, and the pick is a float comparison with fixed thresholds, so
    PyTorch and ONNX Runtime pick the same component for the same z.
    """

    def __init__(self, components: int):
        super().__init__()
        quantiles = torch.arange(1, components, dtype=torch.float64) / components
        self.register_buffer("thresholds", torch.special.ndtri(quantiles).to(torch.float32))
        self.embed = nn.Embedding(components, MIXTURE_EMBEDDING)

    @staticmethod
    def out_dim(latent_dim: int, components: int) -> int:
        return latent_dim - 1 + MIXTURE_EMBEDDING if components else latent_dim

    def component(self, z):
        """k per row: how many thresholds lie below z[:, 0].

        The 0/1 comparisons are summed as floats (exact below 2**24): ONNX Runtime sums int64 ones
        without vectorising, which made this pick a third of the exported ring generator's time."""
        return (z[:, :1] > self.thresholds).to(z.dtype).sum(dim=1).to(torch.int64)

    def forward(self, z):
        return torch.cat([z[:, 1:], self.embed(self.component(z))], dim=1)


def _latent_input(components: int) -> nn.Module:
    return LatentMixture(components) if components else nn.Identity()


def tap_sum_kernel(channels: int, kh: int, kw: int) -> torch.Tensor:
    """[channels, kh*kw, kh, kw]: the kernel of a grouped convolution (groups=channels) that adds input
    channel t of each group at tap t = i*kw + j, i.e. each output's kh x kw tap planes at their offsets."""
    return torch.eye(kh * kw).view(1, kh * kw, kh, kw).repeat(channels, 1, 1, 1)


class NarrowConv2d(nn.Conv2d):
    """A stride-1 convolution with few input or few output channels that, in training, is one matrix product
    with the batch in its columns: each weight's gradient, a sum over the batch, is then a single GEMM call,
    which MKL computes in the same order at any thread count (MKL_CBWR, threads.py).

    oneDNN splits those sums between threads for a one-channel input or output (the digits discriminator's
    first and generator's last convolution), so a run's weights depended on whether it trained with 1 or 2
    threads (up to 5e-4 apart after one backward pass on an AVX-512 Xeon), and gantools picks that count by
    the machine's load (threads.py). The narrow side is the one expanded: the input's k x k patches when the
    input is narrow, else each output's k x k tap planes, added at their offsets by a convolution with a fixed
    one-hot kernel (as export splits it; no weight gradient there). The bias is added per sample and then
    summed over the batch, each sum in one thread. In eval mode (sampling, export) it is the plain
    convolution: the same parameters, state_dict and ONNX graph.
    """

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, 1, padding, bias=bias)
        if in_channels > out_channels:
            self.register_buffer("one_hot", tap_sum_kernel(out_channels, *self.kernel_size), persistent=False)

    def forward(self, x):
        """In training, the GEMM form with the rows of each product in NHWC order: the output is channels-last,
        as the convolutions beside it compute, and an activation whose input and gradient have different
        layouts takes PyTorch's slow strided path."""
        if not self.training:
            return super().forward(x)
        n, cin, h, w = x.shape
        cout, (kh, kw), (ph, pw) = self.out_channels, self.kernel_size, self.padding
        ho, wo = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1
        if cin <= cout:  # patches [n*ho*wo, cin*kh*kw]
            windows = F.pad(x, (pw, pw, ph, ph)).unfold(2, kh, 1).unfold(3, kw, 1)  # [n, cin, ho, wo, kh, kw]
            patches = windows.permute(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, cin * kh * kw)
            y = (patches @ self.weight.reshape(cout, -1).t()).view(n, ho, wo, cout).permute(0, 3, 1, 2)
        else:  # tap planes [n*h*w, cout*kh*kw]
            taps = self.weight.permute(0, 2, 3, 1).reshape(cout * kh * kw, cin)
            planes = x.permute(0, 2, 3, 1).reshape(n * h * w, cin) @ taps.t()
            planes = planes.view(n, h, w, cout * kh * kw).permute(0, 3, 1, 2)
            y = F.conv2d(planes, self.one_hot, padding=(ph, pw), groups=cout)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1).expand(n, -1, 1, 1)


class ChannelsLastUnflatten(nn.Unflatten):
    """nn.Unflatten whose images are channels-last in training, the layout in which the convolutions after it
    return their gradients: the activation between them then sees one layout (NarrowConv2d.forward's docstring)."""

    def forward(self, x):
        h = super().forward(x)
        return h.contiguous(memory_format=torch.channels_last) if self.training else h


class StretchedTanh(nn.Module):
    """clamp(1.25 tanh(x), -1, 1): the outer grey levels, where most pixels of digits lie, within easy reach.

    A plain tanh reaches the top level of 17 (x >= 0.9375) only in its flat
    tail, so generators under-produce pure black and white; stretched, the
    extreme levels are hit at moderate pre-activations and exactly.
    """

    def forward(self, x):
        return torch.clamp(1.25 * torch.tanh(x), -1.0, 1.0)


class SideStretchedTanh(nn.Module):
    """clamp(s tanh(x), -1, 1) with its own stretch s on each side (`stretch` = [dark, bright]), the clamp
    straight-through in training: for 8-bit images, where one extreme level is common and the other rare.

    On MNIST (mostly exact black, little exact white) the stretched dark side makes the background exactly
    black at moderate pre-activations, where a plain tanh leaves it a few levels grey; the unstretched bright
    side lets strokes approach white without piling up on it. A pixel C2ST tells either fault from real
    digits at once (bench/README.md has the comparison). The straight-through clamp lets a clamped pixel
    still hear the discriminator: with a plain clamp a generator can park every pixel in black and stay there.
    """

    def __init__(self, stretch):
        super().__init__()
        self.stretch = tuple(float(s) for s in stretch)

    def forward(self, x):
        t = torch.tanh(x)
        y = t * torch.where(t < 0, self.stretch[0], self.stretch[1])
        clamped = torch.clamp(y, -1.0, 1.0)
        return y + (clamped - y).detach() if self.training else clamped


class Float32(nn.Module):
    """Its input in fp32, whatever autocast computed it in: bf16 spaces values near 1 by 1/256, an 8-bit grey
    level, so an output head that squashes and rounds in bf16 would lose the levels it is there to place."""

    def forward(self, x):
        return x.float()


FEW_LEVELS = 64  # up to this many grey levels (the digits' 17) the output is StretchedTanh; above, 8-bit images


def _image_output(levels: int, stretch=None) -> nn.Module:
    """tanh, in fp32; when rounded to `levels` grey levels, a stretched tanh before the rounding (both sides for
    a few levels, each side by its `stretch` for 8-bit images)."""
    if not levels:
        return nn.Sequential(Float32(), nn.Tanh())
    squash = StretchedTanh() if levels <= FEW_LEVELS else SideStretchedTanh(stretch or (1.0, 1.0))
    return nn.Sequential(Float32(), squash, RoundToLevels(levels))


class MLPGenerator(nn.Module):
    """latent -> 3 x 128 leaky ReLU -> output (the classic GAN of Goodfellow et al.)."""

    def __init__(
        self,
        latent_dim,
        sample_shape,
        num_classes=0,
        hidden=128,
        images=True,
        levels=0,
        point_scale=1.0,
        point_center=None,
        mixture=0,
        stretch=None,
    ):
        super().__init__()
        self.sample_shape = tuple(sample_shape)
        self.latent = _latent_input(mixture)
        self.embed = nn.Embedding(num_classes, num_classes) if num_classes else None
        out = math.prod(self.sample_shape)
        self.net = nn.Sequential(
            nn.Linear(LatentMixture.out_dim(latent_dim, mixture) + num_classes, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, out),
        )
        self.out_act = _image_output(levels, stretch) if images else Affine(point_scale, point_center)

    def forward(self, z, y=None):
        z = self.latent(z)
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        x = self.out_act(self.net(z))
        return x if len(self.sample_shape) == 1 else x.reshape(x.shape[0], *self.sample_shape)


class ProjectionDiscriminator(nn.Module):
    """logit = head(h) + <embed(y), h> with h = body(x): conditional by projection (Miyato & Koyama 2018)."""

    def forward(self, x, y=None):
        h = self.body(x)
        logit = self.head(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(y) * h).sum(dim=1)
        return logit


class MLPDiscriminator(ProjectionDiscriminator):
    """input -> 3 x 128 leaky ReLU -> logit; points are standardised first."""

    def __init__(self, sample_shape, num_classes=0, hidden=128, point_scale=None, point_center=None):
        super().__init__()
        standardise = [Affine(1.0 / point_scale, [-c / point_scale for c in point_center])] if point_scale else []
        self.body = nn.Sequential(
            *standardise,
            nn.Flatten(),
            nn.Linear(math.prod(sample_shape), hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(hidden, 1)
        self.embed = nn.Embedding(num_classes, hidden) if num_classes else None


G_NORMS = ("batch", "none")


class DCGANGenerator(nn.Module):
    """Linear to 4x4 (7x7 for 28x28), then transposed-conv x2 upsampling blocks with BatchNorm (or no normalisation)
    and ReLU.

    Without BatchNorm a sample never depends on the rest of its batch, and
    the exported generator (which uses running statistics) computes exactly
    what training saw.
    """

    def __init__(
        self, latent_dim, sample_shape, num_classes=0, width=64, levels=0, mixture=0, norm="batch", stretch=None
    ):
        super().__init__()
        channels, size, _ = sample_shape
        base, n_up = dcgan_layout(size)
        ch = width * 2**n_up
        bn = norm == "batch"

        def normalise(c):
            return nn.BatchNorm2d(c) if bn else nn.Identity()

        self.latent = _latent_input(mixture)
        self.embed = nn.Embedding(num_classes, 32) if num_classes else None
        self.stem = nn.Sequential(
            nn.Linear(
                LatentMixture.out_dim(latent_dim, mixture) + (32 if num_classes else 0), ch * base * base, bias=not bn
            ),
            ChannelsLastUnflatten(1, (ch, base, base)),
            normalise(ch),
            nn.ReLU(),
        )
        blocks = []
        for _ in range(n_up):
            blocks += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=not bn), normalise(ch // 2), nn.ReLU()]
            ch //= 2
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(NarrowConv2d(ch, channels, 3, padding=1), _image_output(levels, stretch))

    def forward(self, z, y=None):
        z = self.latent(z)
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        return self.to_image(self.blocks(self.stem(z)))


class DCGANDiscriminator(ProjectionDiscriminator):
    """Strided convs with leaky ReLU down to 4x4 (7x7 from 28x28), then a linear logit (+ class projection)."""

    def __init__(self, sample_shape, num_classes=0, width=64):
        super().__init__()
        channels, size, _ = sample_shape
        base, n_down = dcgan_layout(size)
        layers = [NarrowConv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2)]
        ch = width
        for _ in range(n_down):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1), nn.LeakyReLU(0.2)]
            ch *= 2
        # the last activation after the flatten (elementwise: the same values): on the convolution's channels-last
        # output it would get the flatten's NCHW gradient (NarrowConv2d.forward's docstring)
        layers.insert(-1, nn.Flatten())
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(ch * base * base, 1)
        self.embed = nn.Embedding(num_classes, ch * base * base) if num_classes else None


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
    levels, mixture, stretch = config.get("levels") or 0, config.get("mixture") or 0, config.get("stretch")
    g: nn.Module
    d: nn.Module
    if config["model"] == "mlp":
        images = config["kind"] == "image"
        scale = None if images else config.get("point_scale", 1.0)
        center = None if images else config.get("point_center") or [0.0] * math.prod(shape)
        g = MLPGenerator(
            config["latent_dim"],
            shape,
            k,
            config["width"],
            images=images,
            levels=levels,
            point_scale=scale or 1.0,
            point_center=center,
            mixture=mixture,
            stretch=stretch,
        )
        d = MLPDiscriminator(shape, k, config["width"], point_scale=scale, point_center=center)
    else:
        g = DCGANGenerator(
            config["latent_dim"],
            shape,
            k,
            config["width"],
            levels=levels,
            mixture=mixture,
            norm=config.get("g_norm", "batch"),
            stretch=stretch,
        )
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


def fold_fixed_affines(model: nn.Module) -> None:
    """Fold a point model's fixed standardisation into the Linear beside it (at export, in eval mode).

    The same map with two elementwise ops fewer: in a 2-D model's ONNX graph those ops took about a
    seventh of the time. Values change by float rounding only.
    """
    with torch.no_grad():
        if isinstance(model, MLPGenerator) and isinstance(model.out_act, Affine):  # (W z + b) s + t
            last, affine = model.net[-1], model.out_act
            last.weight.mul_(affine.scale)
            last.bias.mul_(affine.scale).add_(affine.shift)
            model.out_act = nn.Identity()
        if isinstance(model, MLPDiscriminator) and isinstance(model.body[0], Affine):  # W (s x + t) + b
            affine, first = model.body[0], next(m for m in model.body if isinstance(m, nn.Linear))
            first.bias.add_(first.weight @ affine.shift)
            first.weight.mul_(affine.scale)
            model.body[0] = nn.Identity()
