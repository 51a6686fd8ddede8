import math

import pytest
import torch

from gantools.errors import GanToolsError
from gantools.losses import d_loss, g_loss, gradient_penalty
from gantools.models import build_models


def _config(**kw):
    base = dict(model="mlp", kind="image", sample_shape=[1, 8, 8], num_classes=0, conditional=False,
                latent_dim=16, width=16, spectral_norm=False)
    base.update(kw)
    return base


@pytest.mark.parametrize("model,shape,k,sn", [
    ("mlp", [1, 8, 8], 0, False),
    ("mlp", [3, 8, 8], 10, True),
    ("dcgan", [1, 8, 8], 0, False),
    ("dcgan", [3, 16, 16], 4, True),
    ("dcgan", [1, 32, 32], 0, False),
    ("dcgan", [3, 64, 64], 0, True),
])
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


def test_model_data_mismatch_is_a_clear_error():
    with pytest.raises(GanToolsError, match="--model mlp"):
        build_models(_config(model="dcgan", kind="points", sample_shape=[2]))
    with pytest.raises(GanToolsError, match="--image-size"):
        build_models(_config(model="dcgan", sample_shape=[1, 28, 28]))


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
