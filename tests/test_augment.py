"""The discriminator's augmentation against shifts and erasures written out with numpy slices."""

import numpy as np
import pytest
import torch

from gantools.augment import augment, draw_params


def _reference(x: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Each image shifted by (dy, dx) with zeros coming in, then a half-side square from (row, col) zeroed."""
    n, _, h, w = x.shape
    out = np.zeros_like(x)
    for i, (dy, dx, r, c) in enumerate(params):
        src = x[i, :, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
        out[i, :, max(0, dy) : max(0, dy) + src.shape[1], max(0, dx) : max(0, dx) + src.shape[2]] = src
        out[i, :, max(0, r) : max(0, r + h // 2), max(0, c) : max(0, c + w // 2)] = 0.0
    return out


@pytest.mark.parametrize("size", [(8, 8), (28, 28), (12, 20)])
def test_shift_and_cutout_are_the_slices_written_out(size):
    h, w = size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, h, w)).astype(np.float32)
    params = draw_params(rng, 64, size, 0.7)
    got = augment(torch.from_numpy(x), torch.from_numpy(params)).numpy()
    np.testing.assert_array_equal(got, _reference(x, params))


def test_every_shift_up_to_an_eighth_of_the_side_and_every_square_position_occur():
    params = draw_params(np.random.default_rng(1), 20000, (28, 28), 1.0)
    assert set(params[:, 0]) == set(params[:, 1]) == set(range(-4, 5))  # 28 / 8 = 3.5, rounded
    assert set(params[:, 2]) == set(range(-7, 21))  # centre anywhere in the image
    erased = augment(torch.ones(200, 1, 28, 28), torch.from_numpy(params[:200])).flatten(1)
    assert (erased == 0).any(dim=1).all()  # at p = 1 every image loses part of itself


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_each_transform_is_applied_with_probability_p(p):
    params = draw_params(np.random.default_rng(2), 40000, (28, 28), p)
    shifted, erased = (params[:, :2] != 0).any(axis=1), params[:, 2] > -28
    assert erased.mean() == pytest.approx(p, abs=0.01)
    assert shifted.mean() == pytest.approx(p * (1 - 1 / 81), abs=0.01)  # a drawn shift of (0, 0) moves nothing
    x = torch.randn(300, 1, 28, 28)
    untouched = ~(shifted[:300] | erased[:300])
    assert torch.equal(augment(x, torch.from_numpy(params[:300]))[untouched], x[untouched])


def test_the_gradient_reaches_exactly_the_pixels_that_stay_in_view():
    params = np.array([[2, -3, -28, 0], [0, 0, 5, 9], [-1, 1, 20, 20]])
    x = torch.zeros(3, 1, 28, 28, requires_grad=True)
    augment(x, torch.from_numpy(params)).sum().backward()
    # a pixel's gradient is 1 where it lands in the frame outside the square: the reference moves ones
    ones = np.ones((3, 1, 28, 28), np.float32)
    landed = _reference(ones, params)
    back = np.zeros_like(ones)  # where each landed pixel came from
    for i, (dy, dx, _, _) in enumerate(params):
        back[i] = np.roll(landed[i], (-dy, -dx), axis=(1, 2))
    np.testing.assert_array_equal(x.grad.numpy(), back)
