import math

import numpy as np
import pytest
import torch

from gantools.errors import GanToolsError
from gantools.losses import d_loss, g_loss, gradient_penalty, r1_penalty
from gantools.models import (
    Affine,
    Float32,
    LatentMixture,
    NarrowConv2d,
    RoundToLevels,
    build_models,
    fold_fixed_affines,
)


def _config(**kw):
    base = dict(
        model="mlp",
        kind="image",
        sample_shape=[1, 8, 8],
        num_classes=0,
        conditional=False,
        latent_dim=16,
        width=16,
        spectral_norm=False,
    )
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "model,shape,k,sn",
    [
        ("mlp", [1, 8, 8], 0, False),
        ("mlp", [3, 8, 8], 10, True),
        ("dcgan", [1, 8, 8], 0, False),
        ("dcgan", [3, 16, 16], 4, True),
        ("dcgan", [1, 32, 32], 0, False),
        ("dcgan", [1, 28, 28], 10, True),
        ("dcgan", [3, 64, 64], 0, True),
    ],
)
def test_image_models_shapes_and_range(model, shape, k, sn):
    G, D = build_models(_config(model=model, sample_shape=shape, num_classes=k, conditional=bool(k), spectral_norm=sn))
    z = torch.randn(5, 16) * 10  # large latents push tanh to its limits
    y = torch.arange(5) % k if k else None
    x = G(z, y)
    assert x.shape == (5, *shape)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x, y).shape == (5,)


def test_mlp_is_the_classic_three_hidden_layers_of_128():
    G, D = build_models(_config(kind="points", sample_shape=[2], width=128))
    linears = [m for m in G.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [128, 128, 128, 2]
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in G.modules()) == 3
    x = G(torch.randn(4, 16) * 100)
    assert x.abs().max() > 1  # points are not squashed into [-1, 1]


@pytest.mark.parametrize(
    "cin, cout, kernel, padding",
    [
        (1, 48, 3, 1),  # the digits discriminator's first convolution: patches
        (48, 1, 3, 1),  # the digits generator's last: tap planes
        (3, 8, (3, 5), (1, 2)),
        (9, 2, (5, 3), 0),
    ],
)
def test_narrow_conv_trains_as_the_convolution_and_evaluates_as_it(cin, cout, kernel, padding):
    """In training, the GEMM forms give conv2d's outputs, gradients and R1's second-order gradients (float64,
    against PyTorch's own convolution of the same weights); in eval mode it is that convolution."""
    conv = NarrowConv2d(cin, cout, kernel, padding=padding).double()
    x = torch.randn(5, cin, 9, 7, dtype=torch.float64, requires_grad=True)
    g = torch.randn_like(torch.nn.functional.conv2d(x, conv.weight, padding=padding))
    results = []
    for forward in (conv, lambda v: torch.nn.functional.conv2d(v, conv.weight, conv.bias, padding=padding)):
        y = forward(x)
        (dx,) = torch.autograd.grad((y * g).sum(), x, create_graph=True)
        results.append([y, dx, *torch.autograd.grad((dx**2).sum() + (y * g).sum(), [conv.weight, conv.bias])])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    conv.eval()
    assert torch.equal(conv(x), torch.nn.functional.conv2d(x, conv.weight, conv.bias, padding=padding))


@pytest.mark.parametrize("shape, norm, k", [([1, 8, 8], "none", 0), ([3, 32, 32], "batch", 4)])
def test_dcgan_activations_get_gradients_in_their_own_layout(shape, norm, k):
    """In a channels-last training step (as train() sets it up), each activation's gradient arrives with the
    strides of its output: with two layouts PyTorch's CPU kernels take a strided path (14x slower for a
    leaky ReLU's gradient)."""
    G, D = build_models(_config(model="dcgan", sample_shape=shape, num_classes=k, conditional=bool(k), g_norm=norm))
    G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    seen = []

    def watch(module, inputs, out):
        out.register_hook(
            lambda grad: seen.append((type(module).__name__, tuple(out.shape), out.stride(), grad.stride()))
        )

    for net in (G, D):
        for m in net.modules():
            if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU)):
                m.register_forward_hook(watch)
    y = torch.arange(6) % k if k else None
    D(G(torch.randn(6, 16), y), y).sum().backward()
    assert len(seen) == 2 * (1 + int(math.log2(shape[1] // 4)))  # G's and D's: one per resolution each
    for name, size, strides, grad_strides in seen:
        assert grad_strides == strides, (name, size)


def test_model_data_mismatch_is_a_clear_error():
    with pytest.raises(GanToolsError, match="--model mlp"):
        build_models(_config(model="dcgan", kind="points", sample_shape=[2]))
    with pytest.raises(GanToolsError, match="--image-size"):
        build_models(_config(model="dcgan", sample_shape=[1, 24, 24]))


def test_ns_loss_at_zero_logits_is_log_4():
    zero = torch.zeros(8)
    assert d_loss("ns", zero, zero).item() == pytest.approx(2 * math.log(2))
    assert g_loss("ns", zero).item() == pytest.approx(math.log(2))


def test_ns_generator_loss_is_minus_log_d():
    logits = torch.tensor([-2.0, 0.5, 3.0])
    expected = -torch.log(torch.sigmoid(logits)).mean()
    assert g_loss("ns", logits).item() == pytest.approx(expected.item(), rel=1e-6)


def test_hinge_loss_is_zero_beyond_the_margin():
    assert d_loss("hinge", torch.full((4,), 2.0), torch.full((4,), -3.0)).item() == 0.0
    assert d_loss("hinge", torch.zeros(4), torch.zeros(4)).item() == pytest.approx(2.0)
    assert g_loss("hinge", torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_wgan_losses_are_mean_differences():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.0])
    assert d_loss("wgan-gp", real, fake).item() == pytest.approx(-0.5 - 2.0)
    assert g_loss("wgan-gp", fake).item() == pytest.approx(0.5)


def test_gradient_penalty_of_a_linear_critic_is_analytic():
    w = torch.tensor([3.0, 4.0])  # |grad| = 5 everywhere

    def critic(x, y=None):
        return x @ w

    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    gp = gradient_penalty(critic, real, fake, None, torch.rand(6))
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2)


def test_r1_penalty_of_a_quadratic_discriminator_is_analytic():
    real = torch.randn(5, 2).requires_grad_(True)
    logits = (real**2).sum(dim=1)  # grad = 2x, |grad|^2 = 4|x|^2
    expected = 0.5 * (4 * (real.detach() ** 2).sum(dim=1)).mean()
    assert r1_penalty(logits, real).item() == pytest.approx(expected.item(), rel=1e-6)


def test_round_to_levels_lands_on_the_grid_and_passes_gradients_straight_through():
    x = torch.linspace(-1, 1, 101, requires_grad=True)
    y = RoundToLevels(17)(x)
    k = (y.detach() + 1) * 8  # 17 levels: k in 0..16, exactly (k/16 is what digits / 16 gives)
    assert torch.equal(k, torch.round(k)) and k.min() == 0 and k.max() == 16
    assert (y.detach() - x.detach()).abs().max() <= 1 / 16 + 1e-6
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.ones(101))


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
@pytest.mark.parametrize("levels", [0, 256])
def test_generators_under_bf16_autocast_squash_and_round_in_fp32(model, levels):
    """bf16 spaces values near 1 by 1/256, half an 8-bit grey level: under bf16 autocast (training's
    --precision bf16) the output head takes the last layer's bf16 values and squashes and rounds them in fp32,
    exactly as in fp32, so the pixel levels are placed as finely as fp32 training places them."""
    config = dict(model=model, kind="image", sample_shape=[1, 28, 28], conditional=False, num_classes=0)
    config.update(g_norm="none", spectral_norm=False, latent_dim=16, width=8, levels=levels, mixture=0)
    G, _ = build_models(dict(config, stretch=[1.5, 1.0]) if levels else config)
    G.eval()  # the plain convolutions, which return bf16 (NarrowConv2d's training form adds its fp32 bias after)
    head = next(m for m in G.modules() if isinstance(m, torch.nn.Sequential) and isinstance(m[0], Float32))
    seen = []
    head.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) * 4  # a spread of pre-activations
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        x = G(z)
    assert seen[0].dtype == torch.bfloat16 and x.dtype == torch.float32
    with torch.no_grad():
        expected = head(seen[0].float()).reshape(x.shape)
    assert torch.equal(x, expected)
    if levels:
        k = (x.double() + 1) * 127.5
        assert (k - torch.round(k)).abs().max() < 1e-4


def test_latent_mixture_components_are_equally_likely_and_exactly_picked():
    mix = LatentMixture(10)
    z0 = torch.as_tensor(np.random.default_rng(0).standard_normal((200_000, 3)), dtype=torch.float32)
    k = mix.component(z0)
    # the component is the number of thresholds strictly below z_0 (an independent count: searchsorted)
    assert torch.equal(k, torch.as_tensor(np.searchsorted(mix.thresholds.numpy(), z0[:, 0].numpy(), "left")))
    share = torch.bincount(k, minlength=10).float() / len(k)
    assert (share - 0.1).abs().max() < 0.004
    edge = torch.tensor([[float(mix.thresholds[4]), 0.0, 0.0]])  # exactly on a threshold: the lower component
    assert int(mix.component(edge)) == 4
    assert mix(z0[:7]).shape == (7, 2 + 16)


def test_points_generators_speak_data_coordinates_and_discriminators_standardise():
    cfg = _config(kind="points", sample_shape=[2], mixture=20, latent_dim=4, point_scale=3.0, point_center=[10.0, -5.0])
    G, D = build_models(cfg)
    z = torch.randn(6, 4)
    torch.testing.assert_close(G(z), G.net(G.latent(z)) * 3.0 + torch.tensor([10.0, -5.0]))
    x = torch.randn(6, 2)
    torch.testing.assert_close(D.body[0](x), (x - torch.tensor([10.0, -5.0])) / 3.0)


def test_folding_the_point_standardisation_keeps_the_maps_and_leaves_no_affine():
    cfg = _config(kind="points", sample_shape=[2], mixture=20, latent_dim=4, point_scale=3.0, point_center=[10.0, -5.0])
    G, D = build_models(cfg)
    z, x = torch.randn(50, 4), torch.randn(50, 2) * 3.0 + torch.tensor([10.0, -5.0])
    with torch.no_grad():
        expected = G(z), D(x)
        fold_fixed_affines(G), fold_fixed_affines(D)
        got = G(z), D(x)
    assert not any(isinstance(m, Affine) for m in [*G.modules(), *D.modules()])
    torch.testing.assert_close(got[0], expected[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-5)
