"""Training health: the verdicts on log lines whose answer is known, and where a run shows them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gantools.health import (
    DIVERSITY_LOW,
    GAP_WIN,
    PERSIST,
    WINDOW,
    diagnose,
    mean_pairwise_distance,
    mode_look,
    summary,
)


def _rows(gaps, g_loss=0.8, every=50, **extra):
    g = np.broadcast_to(g_loss, len(gaps))
    rows = []
    for i, gap in enumerate(gaps):
        row = {"step": every * (i + 1), "d_real": gap / 2, "d_fake": -gap / 2, "g_loss": float(g[i]), "d_loss": 1.3}
        row.update({k: float(np.broadcast_to(v, len(gaps))[i]) for k, v in extra.items()})
        rows.append(row)
    return rows


def test_a_healthy_log_gets_no_verdict():
    rng = np.random.default_rng(0)
    rows = _rows(0.3 + 0.1 * rng.standard_normal(100), diversity=1.0, mode_share=0.13)
    assert diagnose(rows) == []
    assert summary([]).startswith("healthy")


def test_a_winning_discriminator_is_named_with_the_step_its_streak_began():
    gaps = np.concatenate([np.full(10, 0.3), np.linspace(1, 8, 15)])  # the gap climbs past GAP_WIN
    g_loss = np.concatenate([np.full(10, 0.8), np.linspace(1, 4, 15)])
    rows = _rows(gaps, g_loss)
    (verdict,) = diagnose(rows)
    first = next(r["step"] for r in rows if r["d_real"] - r["d_fake"] >= GAP_WIN and r["g_loss"] >= 2)
    assert verdict.problem == "d_wins" and verdict.since == first
    assert "--r1" in verdict.line() and f"since step {first:,}" in verdict.line()


def test_one_bad_line_is_not_a_verdict_and_a_critics_scale_is_not_judged():
    spike = _rows(np.concatenate([np.full(20, 0.3), np.full(PERSIST - 1, 9.0)]), g_loss=4.0)
    assert diagnose(spike) == []  # fewer than PERSIST lines
    assert diagnose(_rows(np.full(20, 9.0), g_loss=4.0), loss="wgan-gp") == []  # critic scores are not logits
    assert [v.problem for v in diagnose(_rows(np.full(20, 9.0), g_loss=0.1), loss="hinge")] == ["d_wins"]


def test_collapse_from_diversity_or_from_one_mode():
    low = diagnose(_rows(np.full(12, 0.3), diversity=np.r_[np.ones(6), np.full(6, DIVERSITY_LOW / 2)]))
    assert [v.problem for v in low] == ["collapse"] and low[0].since == 350
    one_mode = diagnose(_rows(np.full(12, 0.3), diversity=1.0, mode_share=np.r_[np.full(8, 0.13), np.full(4, 0.8)]))
    assert [v.problem for v in one_mode] == ["collapse"] and "80% of the fixed-latent samples" in one_mode[0].detail


def test_samples_off_the_modes_are_judged_only_past_half_the_run():
    rows = _rows(np.full(20, 0.3), diversity=1.0, mode_share=0.13, on_modes=0.2)  # steps 50 .. 1,000
    (verdict,) = diagnose(rows, steps=1000)
    assert verdict.problem == "off_modes" and verdict.since == 500 and "20% of the fixed-latent" in verdict.detail
    assert diagnose(rows[:11], steps=1000) == []  # up to step 550: only 2 lines past half the run
    assert diagnose(_rows(np.full(20, 0.3), on_modes=0.9), steps=1000) == []
    dropped = diagnose(_rows(np.full(20, 0.3), on_modes=0.9, modes_covered=0.36), steps=1000)
    assert [v.problem for v in dropped] == ["off_modes"] and "36% of the modes reached" in dropped[0].detail


def test_oscillation_needs_a_growing_swing():
    t = np.arange(3 * WINDOW)
    growing = 0.5 + 0.05 * 3.0 ** (t / WINDOW * 1.2) * np.sin(t * 2.1)  # amplitude x2.3 a window
    steady = 0.5 + 0.8 * np.sin(t * 2.1)
    assert [v.problem for v in diagnose(_rows(growing))] == ["oscillation"]
    assert diagnose(_rows(steady)) == []


def test_the_distances_and_shares_are_the_plain_ones():
    from scipy.spatial.distance import pdist

    x = np.random.default_rng(1).standard_normal((40, 3, 4))
    assert mean_pairwise_distance(x) == pytest.approx(pdist(x.reshape(40, -1)).mean(), rel=1e-9)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.array([[0.1, 0.0], [9.0, 0.2], [0.3, 0.1], [-0.2, 0.4], [0.0, 9.9]])
    # on a mode: all but (9, 0.2); so the mode at (10, 0) holds none and 2 of the 3 modes are reached
    assert mode_look(points, centers, sigma=0.2) == {"mode_share": 3 / 5, "on_modes": 4 / 5, "modes_covered": 2 / 3}


def test_training_logs_the_look_and_the_verdict_and_says_it_at_the_end(cli, tmp_path):
    code, out, _ = cli("train", "--data", "ring", "--steps", "150", "--out", tmp_path / "r", "-q")
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert all({"diversity", "mode_share", "on_modes", "health"} <= set(r) for r in rows)
    assert all(0 < r["diversity"] and 0 < r["mode_share"] <= 1 and 0 <= r["on_modes"] <= 1 for r in rows)
    assert "health: " in out
    assert "Health: " in (tmp_path / "r" / "report.html").read_text()
