"""Latent walks: the interpolation math, the walks' latents, their smoothness figure and the command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import assert_usage_error
from PIL import Image

from gantools.latents import latents_for
from gantools.walk import (
    Walks,
    component_of,
    dim_latents,
    run_walks,
    slerp,
    smoothness,
    walk_latents,
    with_classes,
)


def test_slerp_follows_the_great_circle_and_interpolates_the_norm():
    a, b = np.array([2.0, 0.0, 0.0]), np.array([0.0, 4.0, 0.0])  # orthogonal: the arc is a quarter circle
    t = np.linspace(0, 1, 7)
    got = slerp(a, b, t)
    np.testing.assert_allclose(got[0], a)
    np.testing.assert_allclose(got[-1], b)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 2 + 2 * t)
    angle = np.arctan2(got[:, 1], got[:, 0])
    np.testing.assert_allclose(angle, t * math.pi / 2, atol=1e-12)  # constant angular speed
    parallel = slerp(a, 3 * a, t)  # no arc: the straight line
    np.testing.assert_allclose(parallel, (1 - t)[:, None] * a + t[:, None] * 3 * a)


def test_walks_run_between_the_latents_generate_draws():
    w = walk_latents(6, seed=3, pairs=2, steps=5, spherical=False, mixture=0)
    ends = latents_for(3, 0, 4, 6)
    np.testing.assert_allclose(w.z[:, 0], ends[0::2], rtol=1e-6)
    np.testing.assert_allclose(w.z[:, -1], ends[1::2], rtol=1e-6)
    np.testing.assert_allclose(w.z[0, 2], (ends[0] + ends[1]) / 2, rtol=1e-5)  # straight line: the midpoint
    again = walk_latents(6, seed=3, pairs=2, steps=5, spherical=False, mixture=0)
    np.testing.assert_array_equal(w.z, again.z)


def test_mixture_walks_stay_in_a_component_or_cross_to_another_and_say_which():
    m = 50
    w = walk_latents(8, seed=0, pairs=6, steps=9, spherical=True, mixture=m)
    for row, label in zip(w.z, w.labels, strict=True):
        first, last = component_of(row[0, 0], m), component_of(row[-1, 0], m)
        if "->" in label:
            assert first != last and label == f"component {first} -> {last}"
            assert len(set(row[:, 0].tolist())) == 2  # one switch: no components in between
        else:
            assert np.all(row[:, 0] == row[0, 0]) and label == f"component {first}"
    assert sum("->" in label for label in w.labels) == 3


def test_component_of_matches_the_models_thresholds():
    import torch

    from gantools.models import LatentMixture

    mix = LatentMixture(7)
    z0 = np.linspace(-3, 3, 601)
    z = torch.zeros(601, 2)
    z[:, 0] = torch.from_numpy(z0)
    picked = mix.component(z).numpy()
    away = np.min(np.abs(z0[:, None] - mix.thresholds.numpy()[None, :]), axis=1) > 1e-6  # not on a boundary
    assert [component_of(v, 7) for v in z0[away]] == picked[away].tolist()


def test_a_dimension_sweep_moves_that_coordinate_only():
    w = dim_latents(5, seed=1, rows=3, steps=7, dim=2, mixture=0)
    base = latents_for(1, 0, 3, 5)
    np.testing.assert_allclose(w.z[:, :, 2], np.tile(np.linspace(-3, 3, 7), (3, 1)), rtol=1e-6)
    for k in (0, 1, 3, 4):
        np.testing.assert_array_equal(w.z[:, :, k], np.repeat(base[:, k : k + 1], 7, axis=1))


def test_conditional_walks_change_the_class_down_the_rows_and_keep_it_along_them():
    w = with_classes(walk_latents(4, 0, 2, 5, True, 0), 3, 1, ["a", "b", "c"])
    assert w.y is not None and w.z.shape == (5, 5, 4)
    np.testing.assert_array_equal(w.y[:3], np.repeat(np.arange(3)[:, None], 5, axis=1))
    np.testing.assert_array_equal(w.y[3:], 1)
    np.testing.assert_array_equal(w.z[0], w.z[2])  # the same latents in every class row
    assert w.labels[:3] == ["walk 0, class a", "walk 0, class b", "walk 0, class c"]


class _Function:
    """A generator protocol over a numpy function of z (no classes)."""

    def __init__(self, fn, latent_dim=4):
        self.fn, self.latent_dim, self.num_classes = fn, latent_dim, 0

    def __call__(self, z, y=None):
        return self.fn(np.asarray(z, np.float64))


def test_a_discontinuous_generator_takes_a_larger_largest_step_than_a_smooth_one():
    """G(z) = tanh(Wz) against the same plus a jump of 2 where z0 crosses 0: on walks whose ends lie on both
    sides of 0 the jump makes one step far longer than the rest; the smooth map spreads its change."""
    w_mat = np.random.default_rng(0).standard_normal((4, 16))
    smooth = _Function(lambda z: np.tanh(z @ w_mat))
    jumpy = _Function(lambda z: np.tanh(z @ w_mat) + 2.0 * (z[:, :1] > 0))
    a, b = np.array([-1.0, 0.3, -0.2, 0.5]), np.array([1.0, -0.4, 0.6, 0.1])
    t = np.linspace(0, 1, 12)
    walks = Walks(np.stack([slerp(a, b, t), slerp(-a, -b, t)]).astype(np.float32), None, ["one", "two"])
    got = {name: smoothness(g, run_walks(g, walks), seed=0) for name, g in (("smooth", smooth), ("jumpy", jumpy))}
    assert got["jumpy"]["step_max"] > 2 * got["smooth"]["step_max"]
    assert got["smooth"]["step_max"] < 2 * got["smooth"]["step_mean"]  # no step much longer than the others
    assert [r["label"] for r in got["smooth"]["rows"]] == ["one", "two"]


def test_walk_command_draws_rows_an_animation_and_the_smoothness(cli, tmp_path):
    png, gif, js = tmp_path / "w.png", tmp_path / "w.gif", tmp_path / "w.json"
    code, out, err = cli(
        "walk", "exported/digits-cdcgan.onnx", "-o", png, "--gif", gif, "--json", js, "--pairs", "4", "--steps", "6"
    )
    assert code == 0, err
    got = json.loads(js.read_text())
    assert got["walks"] == 10 + 4 and got["mixture"] == 50 and 0 < got["step_mean"] <= got["step_max"]
    assert "smoothness" in out
    with Image.open(gif) as animation:
        assert animation.n_frames == 2 * 6 - 2  # forth and back, the ends once each
    first = png.read_bytes()
    assert cli("walk", "exported/digits-cdcgan.onnx", "-o", png, "--pairs", "4", "--steps", "6")[0] == 0
    assert png.read_bytes() == first  # deterministic in (seed, options)
    assert cli("walk", "exported/ring.onnx", "-o", tmp_path / "ring.png", "--dim", "1")[0] == 0


@pytest.mark.parametrize(
    "args,needle",
    [
        (["exported/digits-dcgan.disc.onnx", "-o", "w.png"], "not a generator"),
        (["exported/digits-dcgan.onnx", "-o", "w.png", "--dim", "64"], "--dim"),
        (["exported/digits-dcgan.onnx", "-o", "w.jpg"], "-o"),
        (["exported/digits-dcgan.onnx", "-o", "w.png", "--class", "1"], "--class"),
        (["exported/digits-dcgan.onnx", "-o", "w.png", "--gif", "w.png"], "--gif"),
        (["exported/digits-dcgan.onnx", "-o", "w.png", "--gif", "w.mp4"], "--gif"),
    ],
)
def test_walk_bad_input_is_one_line_exit_2_and_writes_nothing(cli, tmp_path, monkeypatch, args, needle):
    import os

    monkeypatch.chdir(tmp_path)
    args = [os.path.join(os.path.dirname(__file__), "..", a) if a.startswith("exported/") else a for a in args]
    assert_usage_error(cli("walk", *args), needle)
    assert list(tmp_path.iterdir()) == []
