"""The data-copying test: its statistic against independent computations, and cases whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_usage_error

from gantools.metrics.copying import copying_test, nearest_distances, z_mann_whitney


def _mixture(rng, n, d=8, centres=10):
    """n points of a d-dimensional mixture of `centres` unit Gaussians (the same centres for every call)."""
    means = np.random.default_rng(123).standard_normal((centres, d)) * 6.0
    return means[rng.integers(0, centres, n)] + rng.standard_normal((n, d))


def test_z_score_is_the_mann_whitney_u_of_scipy_centred_as_meehan_et_al():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(0)
    g, h = np.round(rng.standard_normal(70), 1), np.round(rng.standard_normal(45) + 0.3, 1)  # with ties
    u = mannwhitneyu(g, h).statistic  # pairs with g > h, ties half
    expected = (u - (70 * 45 / 2 - 0.5)) / math.sqrt(70 * 45 * (70 + 45 + 1) / 12)
    assert z_mann_whitney(g, h) == pytest.approx(expected, rel=1e-12)


def test_nearest_distances_are_the_brute_force_ones():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(1)
    q, r = rng.standard_normal((300, 5)), rng.standard_normal((200, 5))
    full = cdist(q, r)
    dist, idx = nearest_distances(q, r)
    np.testing.assert_allclose(dist, full.min(axis=1), rtol=1e-9)
    np.testing.assert_array_equal(idx, full.argmin(axis=1))


def test_statistic_is_the_published_procedure():
    """Meehan et al.'s C_T recomputed with sklearn's nearest neighbours and scipy's U test: cells by k-means on
    the training data, per cell Z of generated vs held-out distances to that cell's training points, cells with
    at least 20 generated samples averaged with the held-out share as weight."""
    from scipy.stats import mannwhitneyu
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(2)
    t, p = _mixture(rng, 1500), _mixture(rng, 500)
    q = np.concatenate([t[:150] + 0.05 * rng.standard_normal((150, 8)), _mixture(rng, 450)])
    got = copying_test(t, p, q, cells=8, seed=5)
    km = KMeans(n_clusters=8, n_init=3, random_state=5).fit(t)
    tc, pc, qc = km.labels_, km.predict(p), km.predict(q)
    zs, ws = [], []
    for c in range(8):
        if (pc == c).sum() == 0 or (qc == c).sum() < 20:
            continue
        nn = NearestNeighbors(n_neighbors=1).fit(t[tc == c])
        lq, lp = nn.kneighbors(q[qc == c])[0].ravel(), nn.kneighbors(p[pc == c])[0].ravel()
        m, n = len(lq), len(lp)
        u = mannwhitneyu(lq, lp).statistic
        zs.append((u - (m * n / 2 - 0.5)) / math.sqrt(m * n * (m + n + 1) / 12))
        ws.append(n / len(p))
    assert got["copying_ct"] == pytest.approx(np.dot(ws, zs) / np.sum(ws), rel=1e-9)
    assert got["copying_cells"] == len(zs)


def test_exact_copies_give_the_closed_form_z_and_a_full_share():
    """Every generated point is a training point: each of its distances (0) is below every held-out one, so
    U = 0 and, in one cell, C_T = -(mn/2 - 1/2) / sqrt(mn(m+n+1)/12) exactly."""
    rng = np.random.default_rng(3)
    t, p = rng.standard_normal((400, 2)), rng.standard_normal((150, 2))
    q = t[rng.choice(400, 100, replace=False)]
    got = copying_test(t, p, q, cells=1)
    m, n = 100, 150
    assert got["copying_ct"] == pytest.approx(-(m * n / 2 - 0.5) / math.sqrt(m * n * (m + n + 1) / 12), rel=1e-9)
    assert got["copying_share"] == 1.0
    assert {s["train"] for s in got["copying_suspects"]} <= set(np.flatnonzero(np.isin(t[:, 0], q[:, 0])))


def test_without_copying_the_statistic_is_standard_normal_in_one_cell():
    """Training, held-out and generated points all drawn from one 2-D Gaussian: in one cell Z is a standardised
    Mann-Whitney U, N(0, 1) under the null: over 300 draws its mean is within 0.2 of 0 (4 standard errors) and
    its standard deviation within 15% of 1."""
    rng = np.random.default_rng(4)
    z = [
        copying_test(rng.standard_normal((200, 2)), *rng.standard_normal((2, 100, 2)), cells=1)["copying_ct"]
        for _ in range(300)
    ]
    assert abs(np.mean(z)) < 0.2
    assert 0.85 < np.std(z) < 1.15


def test_a_memoriser_is_flagged_a_fresh_sampler_is_not_and_a_partial_copier_shows_its_share():
    rng = np.random.default_rng(5)
    t, p = _mixture(rng, 3000), _mixture(rng, 1000)
    noise = 0.02  # a little noise on each copy: 2% of the mixture's unit spread
    memoriser = t[rng.integers(0, 3000, 1000)] + noise * rng.standard_normal((1000, 8))
    fresh = _mixture(rng, 1000)
    copied = rng.random(1000) < 0.3
    partial = np.where(copied[:, None], t[rng.integers(0, 3000, 1000)] + noise * rng.standard_normal((1000, 8)), fresh)
    caught, clean, mixed = (copying_test(t, p, q) for q in (memoriser, fresh, partial))
    # complete copying in cells of about 100 held-out and 100 generated samples: Z = -sqrt(3mn / (m+n+1)), -12
    assert caught["copying_ct"] < -10 and caught["copying_share"] > 0.95
    assert -3 < clean["copying_ct"] < 3 and clean["copying_share"] < 0.03  # about 1% by construction
    assert mixed["copying_ct"] < -3
    assert mixed["copying_share"] == pytest.approx(copied.mean() + 0.01 * (1 - copied.mean()), abs=0.04)
    assert all(copied[s["sample"]] for s in mixed["copying_suspects"])  # the nearest ones are copies


def test_held_out_data_that_is_training_data_is_refused():
    rng = np.random.default_rng(6)
    t = rng.standard_normal((300, 3))
    with pytest.raises(ValueError, match="held-out samples are also training samples"):
        copying_test(t, t[:100], rng.standard_normal((100, 3)))


def test_score_gates_on_copying_and_catches_the_training_data_as_a_generator(cli, tmp_path):
    """On the 8x8 digits, raw pixels: digits:train scored as if generated is caught (C_T far below -3, gate
    fails with exit 1) and its report shows the copies beside their training images; the shipped digits
    generator passes the same gate."""
    import json

    copying = "--real digits:test --train digits:train --metrics copying --extractor raw --min copying=-3 -q".split()
    code, out, _ = cli(
        "score", "digits:train", *copying, "--json", tmp_path / "m.json", "--report", tmp_path / "r.html"
    )
    got = json.loads((tmp_path / "m.json").read_text())
    assert code == 1 and got["copying_ct"] < -3 and got["copying_share"] == 1.0
    assert "copying_ct" in out and "FAIL" in out
    assert "Nearest to the training data" in (tmp_path / "r.html").read_text()
    assert all(s["distance"] == pytest.approx(0, abs=1e-6) for s in got["copying_suspects"])
    code, _, _ = cli("score", "exported/digits-dcgan.onnx", "-n", "2000", *copying)
    assert code == 0


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--metrics", "copying"], "--train"),
        (["--metrics", "fid", "--train", "digits:train"], "--train"),
        (["--metrics", "copying", "--train", "digits:test"], "--train"),
        (["--metrics", "copying", "--train", "ring"], "--train ring"),
        (["--metrics", "copying", "--train", "digits:train", "--copying-cells", "0"], "--copying-cells"),
        (["--metrics", "copying", "--train", "digits:train", "-n", "10"], "generated samples"),
    ],
)
def test_copying_bad_input_is_one_line_and_exit_2(cli, tmp_path, args, needle):
    result = cli(
        "score",
        "digits:test",
        "--real",
        "digits:test",
        "--extractor",
        "raw",
        "-q",
        *args,
        "--json",
        tmp_path / "out.json",
    )
    assert_usage_error(result, needle)
    assert not (tmp_path / "out.json").exists()


def test_copying_refuses_held_out_data_that_overlaps_the_training_data(cli):
    assert_usage_error(
        cli(
            "score",
            "digits:test",
            "--real",
            "digits",
            "--train",
            "digits:train",
            "--metrics",
            "copying",
            "--extractor",
            "raw",
            "-q",
        ),
        "--real",
    )
