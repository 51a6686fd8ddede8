"""Discriminator-guided sampling against an analytic oracle.

The generator is the identity on z ~ N(0, I) in 2-D and the discriminator's
logit is the exact log density ratio of a target N(mu, s^2 I) to N(0, I):
independent Metropolis-Hastings with that ratio samples the target, and
rejection sampling moves the samples towards it.
"""

import json
import math

import numpy as np
import pytest
import torch
from conftest import ThreadRecorded
from torch import nn

from gantools.errors import GanToolsError
from gantools.export import module_to_onnx
from gantools.generate import generate

MU, S = torch.tensor([0.5, 0.0]), 0.5


class Identity(nn.Module):
    def forward(self, z):
        return z * 1.0


class LogRatio(nn.Module):
    def forward(self, x):
        return -((x - MU) ** 2).sum(dim=1) / (2 * S * S) + (x**2).sum(dim=1) / 2 - 2 * math.log(S)


def _meta(role, loss="ns"):
    return {
        "gantools_format": "1",
        "role": role,
        "kind": "points",
        "latent_dim": 2,
        "num_classes": 0,
        "sample_shape": json.dumps([2]),
        "class_names": "[]",
        "data": "oracle",
        "loss": loss,
    }


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    root = tmp_path_factory.mktemp("oracle")
    example = [torch.randn(2, 2)]
    module_to_onnx(Identity(), example, ["z"], ["x"], root / "g.onnx", _meta("generator"))
    module_to_onnx(LogRatio(), example, ["x"], ["logit"], root / "g.disc.onnx", _meta("discriminator"))
    module_to_onnx(LogRatio(), example, ["x"], ["logit"], root / "hinge.onnx", _meta("discriminator", "hinge"))
    return root


def _points(path):
    with np.load(path) as z:
        return z["x"]


def test_metropolis_hastings_with_the_exact_ratio_samples_the_target(oracle, tmp_path):
    generate(oracle / "g.onnx", 4000, tmp_path / "mh.npz", refine="mh", progress=False)
    x = _points(tmp_path / "mh.npz")
    np.testing.assert_allclose(x.mean(axis=0), MU.numpy(), atol=0.04)
    np.testing.assert_allclose(x.std(axis=0), [S, S], atol=0.04)


def test_rejection_sampling_moves_samples_towards_the_target(oracle, tmp_path):
    generate(oracle / "g.onnx", 4000, tmp_path / "plain.npz", progress=False)
    generate(oracle / "g.onnx", 4000, tmp_path / "drs.npz", refine="drs", progress=False)
    plain, drs = _points(tmp_path / "plain.npz"), _points(tmp_path / "drs.npz")
    target = MU.numpy()
    assert np.linalg.norm(drs.mean(axis=0) - target) < 0.5 * np.linalg.norm(plain.mean(axis=0) - target)
    assert drs.std(axis=0).max() < 0.8 * plain.std(axis=0).min()


@pytest.mark.parametrize("method", ["drs", "mh"])
def test_refined_samples_depend_only_on_seed_and_index(oracle, tmp_path, method):
    generate(oracle / "g.onnx", 50, tmp_path / "a.npz", refine=method, batch_size=7, seed=3, progress=False)
    generate(oracle / "g.onnx", 50, tmp_path / "b.npz", refine=method, batch_size=64, seed=3, progress=False)
    generate(oracle / "g.onnx", 20, tmp_path / "c.npz", refine=method, batch_size=64, seed=3, progress=False)
    generate(oracle / "g.onnx", 50, tmp_path / "d.npz", refine=method, seed=4, progress=False)
    a = _points(tmp_path / "a.npz")
    np.testing.assert_array_equal(a, _points(tmp_path / "b.npz"))
    np.testing.assert_array_equal(a[:20], _points(tmp_path / "c.npz"))
    assert not np.array_equal(a, _points(tmp_path / "d.npz"))


def test_refine_needs_an_ns_discriminator_and_discriminator_needs_refine(oracle, tmp_path):
    with pytest.raises(GanToolsError, match="--loss ns"):
        generate(
            oracle / "g.onnx", 5, tmp_path / "x.npz", refine="drs", discriminator=oracle / "hinge.onnx", progress=False
        )
    with pytest.raises(GanToolsError, match="--refine"):
        generate(oracle / "g.onnx", 5, tmp_path / "x.npz", discriminator=oracle / "g.disc.onnx", progress=False)
    assert not (tmp_path / "x.npz").exists()


def test_refine_of_a_conditional_model_keeps_the_requested_classes(exported, tmp_path):
    generate(exported["cdcgan"], 30, tmp_path / "c.npz", refine="mh", progress=False)
    with np.load(tmp_path / "c.npz") as z:
        np.testing.assert_array_equal(z["y"], np.arange(30) % 10)


@pytest.mark.parametrize("method", ["drs", "mh"])
def test_refined_batches_in_lanes_equal_one_session_batch_by_batch(exported, monkeypatch, method):
    """Jobs of several sizes through three lanes of a conditional DCGAN and its discriminator: each batch is
    the one the main sessions refine, in order, and lane threads (not the caller's) ran both models."""
    import threading

    from gantools.refine import Refiner, find_discriminator
    from gantools.runtime import OnnxGenerator

    monkeypatch.setattr("gantools.threads.usable_cores", lambda: 3)
    g = OnnxGenerator(exported["cdcgan"], "cpu")
    refiner = Refiner(g, find_discriminator(exported["cdcgan"]), method, seed=2)
    ran_in = []
    assert len(refiner.lanes) == 3
    for g_lane, d_lane in refiner.lanes:
        g_lane.session, d_lane.session = ThreadRecorded(g_lane.session, ran_in), ThreadRecorded(d_lane.session, ran_in)
    sizes = [40, 5, 1, 33, 7]
    jobs = list(zip(np.cumsum([0] + sizes[:-1]).tolist(), sizes, strict=True))
    out = list(refiner.run_batches(jobs))
    assert len(out) == len(jobs) and ran_in and threading.get_ident() not in ran_in
    for (first, m), (z, y, x) in zip(jobs, out, strict=True):
        z_one, y_one, x_one = refiner.batch(first, m)
        np.testing.assert_array_equal(z, z_one)
        np.testing.assert_array_equal(y, y_one)
        np.testing.assert_array_equal(x, x_one)
    calls = len(ran_in)
    list(refiner.run_batches(jobs[:1]))  # one job: the main sessions, no lanes
    assert len(ran_in) == calls


def _by_definition(oracle, method, seed, n):
    """Refined samples 0..n-1 drawn the straightforward way: one numpy generator per candidate,
    default_rng([seed, i, key, try]), its standard_normal(2, float32) then its random(), sample by sample."""
    from gantools.refine import (
        _BURN_IN,
        _CANDIDATE,
        BURN_IN,
        CHAIN_LENGTH,
        EPS,
        GAMMA_PERCENTILE,
        MAX_TRIES,
        find_discriminator,
    )

    d = find_discriminator(oracle / "g.onnx")

    def draw(i, key, attempt):  # the generator is the identity: the candidate is its latent
        g = np.random.default_rng([seed, i, key, attempt])
        z = g.standard_normal(2, dtype=np.float32)
        return z, g.random(), float(np.asarray(d(z[None], None))[0])

    def f(logit, d_max):
        gap = min(logit - d_max, 0.0)
        return gap - math.log1p(-math.exp(gap - EPS))

    if method == "drs":
        burn_in = [draw(i, _BURN_IN, 0)[2] for i in range(BURN_IN)]
        d_max = max(burn_in)
        gamma = float(np.percentile([f(v, d_max) for v in burn_in], GAMMA_PERCENTILE))
    out = []
    for i in range(n):
        if method == "mh":
            z, _, logit = draw(i, _CANDIDATE, 0)
            for attempt in range(1, CHAIN_LENGTH):
                z_new, u, logit_new = draw(i, _CANDIDATE, attempt)
                if math.log(max(u, 1e-300)) < logit_new - logit:
                    z, logit = z_new, logit_new
        else:
            best = -math.inf
            for attempt in range(MAX_TRIES):
                z_new, u, logit = draw(i, _CANDIDATE, attempt)
                score = f(logit, d_max) - gamma
                accept = u < 1.0 / (1.0 + math.exp(-score))
                if accept or score > best:
                    z, best = z_new, score
                if accept:
                    break
        out.append(z)
    return np.stack(out)


@pytest.mark.parametrize("method, proposal_values", [("drs", None), ("mh", None), ("mh", 600)])
def test_refined_samples_are_the_one_generator_per_candidate_definition(
    oracle, tmp_path, monkeypatch, method, proposal_values
):
    """The candidates are drawn for many samples and tries at once (latents.py); the samples are still those of
    the sample-by-sample definition, bit for bit. 600 proposal values: mh's chains drawn 3 tries at a time
    (100 samples of 2-d latents), the last draw 2 tries. The batches run in two lanes."""
    if proposal_values:
        monkeypatch.setattr("gantools.refine.PROPOSAL_VALUES", proposal_values)
    monkeypatch.setattr("gantools.threads.usable_cores", lambda: 2)  # its 3 batches run in lanes on any machine
    generate(oracle / "g.onnx", 300, tmp_path / "r.npz", refine=method, batch_size=100, seed=5, progress=False)
    np.testing.assert_array_equal(_points(tmp_path / "r.npz"), _by_definition(oracle, method, 5, 300))
