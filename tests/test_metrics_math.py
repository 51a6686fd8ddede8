"""The pure metric math against analytic answers and independent reference computations."""

import numpy as np
import pytest
import scipy.linalg
from sklearn.metrics import roc_auc_score

from gantools.errors import GanToolsError
from gantools.metrics import (
    StreamingStats,
    c2st,
    disc_metrics,
    features_to_stats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    mode_metrics,
    prdc,
    roc_auc,
    softmax,
)
from gantools.metrics.bootstrap import fid_interval, kid_interval
from gantools.metrics.discriminator import wilson_interval


def _spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_fid_equal_covariances_is_squared_mean_distance():
    rng = np.random.default_rng(0)
    s = _spd(rng, 20)
    mu1, mu2 = rng.standard_normal(20), rng.standard_normal(20)
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9, abs=1e-9)
    assert frechet_distance(mu1, s, mu1, s) == pytest.approx(0.0, abs=1e-9)


def test_fid_diagonal_case_is_sum_of_squared_root_differences():
    a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 1.0, 9.0, 1.0])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + 3.0**2
    got = frechet_distance(np.zeros(4), np.diag(a), np.array([3.0, 0, 0, 0]), np.diag(b))
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fid_agrees_with_scipy_sqrtm(seed):
    rng = np.random.default_rng(seed)
    d = 64
    s1, s2 = _spd(rng, d), _spd(rng, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_fid_of_a_set_against_itself_is_zero_not_negative():
    rng = np.random.default_rng(4)
    mu, s = features_to_stats(rng.standard_normal((300, 256)) * 3 + 1)
    assert 0.0 <= frechet_distance(mu, s, mu, s) < 1e-8


def test_fid_with_singular_covariances_does_not_crash():
    rng = np.random.default_rng(3)
    f1, f2 = rng.standard_normal((10, 50)), rng.standard_normal((10, 50)) + 1  # n < d: rank-deficient
    mu1, s1 = features_to_stats(f1)
    mu2, s2 = features_to_stats(f2)
    value = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize("side", ["rows1", "rows2", "both"])
def test_fid_n_by_n_form_equals_the_d_by_d_form(side):
    """With fewer rows than dimensions, the n x n problem F S2 F^T has the non-zero eigenvalues of S1 S2."""
    rng = np.random.default_rng(5)
    f1, f2 = rng.standard_normal((40, 96)) * 2, rng.gamma(2.0, size=(70, 96))
    mu1, s1 = f1.mean(0), np.cov(f1, rowvar=False)
    mu2, s2 = f2.mean(0), np.cov(f2, rowvar=False)
    rows = {"rows1": f1 if side != "rows2" else None, "rows2": f2 if side != "rows1" else None}
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2, **rows) == pytest.approx(frechet_distance(mu1, s1, mu2, s2), rel=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2, **rows) == pytest.approx(reference, rel=1e-6)


def test_fid_rows_that_do_not_fit_the_statistics_are_refused():
    rng = np.random.default_rng(6)
    f = rng.standard_normal((10, 20))
    mu, s = f.mean(0), np.cov(f, rowvar=False)
    with pytest.raises(GanToolsError, match="feature rows"):
        frechet_distance(mu, s, mu, s, rows1=f[:, :5])


def test_streaming_stats_equal_numpy_cov_over_uneven_batches():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((1001, 30)) * 5 + 100).astype(np.float32)
    acc = StreamingStats(30)
    for start, stop in [(0, 1), (1, 64), (64, 500), (500, 1001)]:
        acc.update(x[start:stop])
    np.testing.assert_allclose(acc.mean, x.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.cov, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-10)
    assert acc.n == 1001


def test_kid_of_identical_sets_is_about_zero_and_grows_with_shift():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((600, 16))
    identical, _ = kernel_inception_distance(f, f.copy(), subsets=20, subset_size=600)
    same, same_std = kernel_inception_distance(f, rng.standard_normal((600, 16)), subsets=20, subset_size=200)
    shifted, _ = kernel_inception_distance(f, f + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 3 * same_std
    diag = ((f * f).sum(axis=1) / 16 + 1) ** 3
    assert abs(identical) <= 2 * diag.mean() / 600  # the estimator's O(1/m) self-pair term, nothing more
    assert shifted > 10 * max(abs(same), same_std)


def test_kid_matches_a_direct_unbiased_mmd():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((50, 8)), rng.standard_normal((50, 8)) + 0.3
    mean, std = kernel_inception_distance(x, y, subsets=1, subset_size=50)
    k = lambda a, b: (a @ b.T / 8 + 1) ** 3  # noqa: E731
    m = 50
    within = (k(x, x).sum() - np.trace(k(x, x)) + k(y, y).sum() - np.trace(k(y, y))) / (m * (m - 1))
    expected = within - 2 * k(x, y).mean()
    assert mean == pytest.approx(expected, rel=1e-10) and std == 0.0


def test_kid_is_seeded():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((300, 8)), rng.standard_normal((300, 8))
    assert kernel_inception_distance(x, y, 10, 100, seed=1) == kernel_inception_distance(x, y, 10, 100, seed=1)
    assert kernel_inception_distance(x, y, 10, 100, seed=1) != kernel_inception_distance(x, y, 10, 100, seed=2)


def test_inception_score_bounds():
    k = 10
    uniform = np.full((100, k), 1.0 / k)
    assert inception_score(uniform)[0] == pytest.approx(1.0)
    confident_balanced = np.eye(k)[np.arange(100) % k]
    assert inception_score(confident_balanced) == pytest.approx((k, 0.0))
    np.testing.assert_allclose(softmax(np.log(uniform) + 3.0), uniform)


def test_inception_score_matches_the_definition_on_random_probs():
    rng = np.random.default_rng(0)
    p = softmax(rng.standard_normal((40, 5)) * 2)
    parts = [p[i * 10 : (i + 1) * 10] for i in range(4)]
    expected = [np.exp(np.mean([np.sum(q * np.log(q / part.mean(0))) for q in part])) for part in parts]
    mean, std = inception_score(p, splits=4)
    assert mean == pytest.approx(np.mean(expected)) and std == pytest.approx(np.std(expected))


def _reference_prdc(real, fake, k):
    """prdc as published by Naeem et al.: full distance matrices, k-th neighbour radii."""

    def dists(a, b):
        return np.sqrt(np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T, 0))

    r_rad = np.sort(dists(real, real), axis=1)[:, k]
    f_rad = np.sort(dists(fake, fake), axis=1)[:, k]
    d = dists(real, fake)
    return {
        "precision": (d < r_rad[:, None]).any(axis=0).mean(),
        "recall": (d < f_rad[None, :]).any(axis=1).mean(),
        "density": (1 / k) * (d < r_rad[:, None]).sum(axis=0).mean(),
        "coverage": (d.min(axis=1) < r_rad).mean(),
    }


def test_prdc_matches_reference_with_chunking(monkeypatch):
    import importlib

    prdc_module = importlib.import_module("gantools.metrics.prdc")  # the package exports a function of that name
    monkeypatch.setattr(prdc_module, "CHUNK", 37)  # many uneven blocks
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((300, 12)), rng.standard_normal((250, 12)) * 1.2 + 0.2
    got = prdc(real, fake, k_pr=5, k_dc=5)
    as_used = [a.astype(np.float32).astype(np.float64) for a in (real, fake)]  # prdc computes from float32
    expected = _reference_prdc(*as_used, 5)
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key


def test_prdc_different_k_for_pr_and_dc():
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((200, 6)), rng.standard_normal((200, 6))
    got = prdc(real, fake, k_pr=3, k_dc=5)
    r3, r5 = _reference_prdc(real, fake, 3), _reference_prdc(real, fake, 5)
    assert got["precision"] == pytest.approx(r3["precision"]) and got["recall"] == pytest.approx(r3["recall"])
    assert got["density"] == pytest.approx(r5["density"]) and got["coverage"] == pytest.approx(r5["coverage"])


@pytest.mark.slow
def test_prdc_published_sanity_case():
    """Naeem et al.'s README: two independent 10k samples of N(0, I_1000), k=5.

    The published figures come from one random draw; across draws (seeds 0-2, 10-12 measured here)
    P and R move by about 0.015, D by about 0.07 and C by about 0.01, hence the tolerances.
    """
    rng = np.random.default_rng(10)
    real, fake = rng.standard_normal((10000, 1000)), rng.standard_normal((10000, 1000))
    got = prdc(real, fake, k_pr=5, k_dc=5)
    expected = {
        "precision": (0.4772, 0.03),
        "recall": (0.4705, 0.03),
        "density": (1.0555, 0.15),
        "coverage": (0.9735, 0.02),
    }
    for key, (value, tolerance) in expected.items():
        assert got[key] == pytest.approx(value, abs=tolerance), key


def test_mode_metrics_on_hand_made_points():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    sigma = 0.1
    near = np.repeat(centers[:2], 50, axis=0) + 0.05  # within 3 sigma of modes 0 and 1
    far = np.array([[5.0, 5.0]] * 100)  # between modes: low quality
    got = mode_metrics(np.concatenate([near, far]), centers, sigma)
    assert got["modes"] == 2 and got["hq_fraction"] == pytest.approx(0.5)
    assert got["reverse_kl"] == pytest.approx(np.log(2))  # half of the 4 modes, evenly
    perfect = mode_metrics(np.repeat(centers, 25, axis=0), centers, sigma)
    assert perfect == {"modes": 4, "hq_fraction": 1.0, "reverse_kl": pytest.approx(0.0)}
    assert mode_metrics(far, centers, sigma)["reverse_kl"] == float("inf")


def test_mode_capture_needs_a_fifth_of_the_expected_share():
    centers = np.array([[0.0, 0.0], [10.0, 0.0]])
    pts = np.concatenate([np.zeros((95, 2)), np.full((5, 2), [10.0, 0.0])])  # expected 50 each; 5 < 10
    assert mode_metrics(pts, centers, 0.1)["modes"] == 1


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    pos, neg = np.round(rng.normal(1, 1, 300), 1), np.round(rng.normal(0, 1, 200), 1)
    expected = roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[pos, neg])
    assert roc_auc(pos, neg) == pytest.approx(expected, rel=1e-12)


def test_disc_metrics_at_threshold():
    got = disc_metrics(np.array([1.0, 2.0, -1.0]), np.array([-2.0, 0.5, -0.1]), threshold=0.0)
    assert got["disc_accuracy"] == pytest.approx(4 / 6)
    assert got["disc_auc"] == pytest.approx(7 / 9)


@pytest.mark.parametrize("dim", [2, 64, 1500])  # trees up to 1,024 dimensions, logistic regression above
def test_c2st_near_half_for_same_distribution_and_high_for_different(dim):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((600, dim)), rng.standard_normal((600, dim))
    same = c2st(a, b, seed=0)
    assert same["c2st_ci_low"] <= 0.5 <= same["c2st_ci_high"] + 0.02
    diff = c2st(a, b * 0.3 + 1.5, seed=0)
    assert diff["c2st_accuracy"] > 0.8 and diff["c2st_ci_low"] > 0.7


def test_c2st_sees_a_non_linear_difference_in_2d():
    """Points on a ring vs points filling its disc: same mean, same covariance, different support."""
    rng = np.random.default_rng(1)
    angle = rng.uniform(0, 2 * np.pi, (2, 1000))
    ring = np.stack([np.cos(angle[0]), np.sin(angle[0])], axis=1)
    disc = np.stack([np.cos(angle[1]), np.sin(angle[1])], axis=1) * np.sqrt(rng.uniform(0, 1, (1000, 1))) * np.sqrt(2)
    assert c2st(ring, disc, seed=0)["c2st_accuracy"] > 0.85  # a linear classifier stays near 0.5 here


def test_c2st_reaches_the_bayes_accuracy_of_two_shifted_gaussians():
    """N(0, 1) against N(1, 1): no classifier beats Phi(1/2) = 0.6915 (threshold at 1/2), and trees on 2 x 1,000
    cross-validated samples get within 0.03 of it (a half/half split of them scatters twice as far)."""
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    got = c2st(rng.standard_normal((1000, 1)), rng.standard_normal((1000, 1)) + 1.0, seed=0)
    assert got["c2st_accuracy"] == pytest.approx(norm.cdf(0.5), abs=0.03)
    assert got["c2st_ci_low"] < norm.cdf(0.5) < got["c2st_ci_high"] + 0.01


def test_c2st_predicts_every_real_sample_and_as_many_generated_once():
    """The accuracy is that of sklearn's own cross_val_predict over all 2n rows (every real sample, a seeded
    subset of the larger generated side), and n, the fold count and the Wilson interval over 2n are reported."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    rng = np.random.default_rng(4)
    real, fake = rng.standard_normal((300, 3)), rng.standard_normal((1000, 3)) * 1.3
    got = c2st(real, fake, seed=7, folds=4)
    assert got["c2st_n"] == 300 and got["c2st_folds"] == 4
    subset = fake[np.sort(np.random.default_rng(7).choice(1000, 300, replace=False))]
    x, y = np.concatenate([real, subset]), np.repeat([1, 0], 300)
    predicted = cross_val_predict(
        HistGradientBoostingClassifier(random_state=7), x, y, cv=StratifiedKFold(4, shuffle=True, random_state=7)
    )
    correct = int((predicted == y).sum())
    assert got["c2st_accuracy"] == correct / 600
    assert (got["c2st_ci_low"], got["c2st_ci_high"]) == pytest.approx(wilson_interval(correct, 600))


def test_c2st_refuses_too_few_samples_for_its_folds():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="at least 20 samples"):
        c2st(rng.standard_normal((19, 2)), rng.standard_normal((50, 2)), folds=20)
    with pytest.raises(ValueError, match="at least 2 folds"):
        c2st(rng.standard_normal((50, 2)), rng.standard_normal((50, 2)), folds=1)


@pytest.mark.slow
def test_c2st_of_one_distribution_is_calibrated():
    """Two samples of one distribution, 40 times: the accuracies centre on 0.5, scatter as 2n coin flips
    (0.5 / sqrt(2n)), and the 95% interval holds 0.5 in at least 85% of them."""
    rng = np.random.default_rng(6)
    runs = [c2st(rng.standard_normal((200, 2)), rng.standard_normal((200, 2)), seed=s) for s in range(40)]
    accuracy = np.array([r["c2st_accuracy"] for r in runs])
    assert abs(accuracy.mean() - 0.5) < 3 * 0.5 / np.sqrt(400) / np.sqrt(40)
    assert 0.5 * 0.5 / np.sqrt(400) < accuracy.std() < 2 * 0.5 / np.sqrt(400)
    assert np.mean([r["c2st_ci_low"] <= 0.5 <= r["c2st_ci_high"] for r in runs]) >= 0.85


def test_wilson_interval_known_value():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)


def test_bootstrap_intervals_bracket_the_estimate():
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((300, 4)), rng.standard_normal((300, 4)) + 0.3
    mu1, s1 = features_to_stats(fake)
    mu2, s2 = features_to_stats(real)
    fid = frechet_distance(mu1, s1, mu2, s2)
    low, high = fid_interval(fake, real, 50, seed=0)
    assert low < fid < high
    low_s, high_s = fid_interval(fake, (mu2, s2), 50, seed=0)
    assert low_s < fid < high_s and high_s - low_s < high - low  # fixed real side: narrower
    kid, _ = kernel_inception_distance(real, fake, 20, 100)
    low_k, high_k = kid_interval(real, fake, 20, 20, 100)
    assert low_k < kid < high_k


def test_fid_of_singular_covariances_does_not_depend_on_summation_order():
    """Features spanning fewer dimensions than they have (or n < d) make zero eigenvalues, whose rounding
    noise once moved FID by 1e-7 relative between two ways of summing the same statistics."""
    from gantools.metrics.stats import StreamingStats

    rng = np.random.default_rng(0)
    mix = rng.normal(size=(60, 128))  # 128 features spanned by 60 factors: a rank-60 covariance
    a, b = rng.gamma(2.0, size=(300, 60)) @ mix, rng.gamma(2.2, size=(300, 60)) @ mix
    streamed = []
    for f in (a, b):
        acc = StreamingStats(f.shape[1])
        for i in range(0, len(f), 64):
            acc.update(f[i : i + 64])
        streamed.append((acc.mean, acc.cov))
    one = frechet_distance(*streamed[0], *streamed[1])
    two = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert one == pytest.approx(two, rel=1e-9)
