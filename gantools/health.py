"""Training health: a verdict on a run from what its log already says, plus two cheap looks at its samples.

Loss curves do not say whether a GAN is learning: a discriminator that wins,
a generator that collapses and a game that oscillates all still print losses.
Each log line carries the mean logits D(real) and D(fake) and the losses;
training adds the diversity of the generator's samples on fixed latents
relative to a real batch, and for data with known modes the share of those
samples in the most popular mode. From those lines alone this module names:

- the discriminator winning: D(real) - D(fake) large and G's loss high
  (D tells every sample apart, and G gets little gradient from it);
- collapse: the fixed-latent samples far less diverse than real data, or
  most of them in one mode of a mixture;
- not converging (data with known modes): past half the run, three quarters
  of the fixed-latent samples or more still off every mode (beyond 3 sigma),
  or fewer than half of the modes reached by them (modes dropped);
- oscillation: D(real) - D(fake) swinging with growing amplitude;
- divergence (NaN/Inf) stops training with its own error.

Each condition must hold on PERSIST consecutive lines, so a noisy line is not
a verdict; the verdict names the step its streak began and what to try. The
thresholds come from runs made to fail and the recipes' runs
(`bench/health.py`, bench/README.md has the counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERSIST = 3  # consecutive log lines (150 steps at the default --log-every) a condition must hold
GAP_WIN = 4.0  # D(real) - D(fake) mean logits: D right about 88% of the time or more on average
G_LOSS_WIN = 2.0  # non-saturating G loss -log D(G(z)) >= 2: D(G(z)) <= 0.14 on average
DIVERSITY_LOW = 0.35  # fixed-latent samples' mean pairwise distance over a real batch's
MODE_SHARE_HIGH = 0.5  # share of the fixed-latent points in the most popular mode (uniform: 1 / modes)
# share of the fixed-latent points within 3 sigma of a mode, past half the run (the recipes' R1 fades over the
# run, and their samples may stray from the modes for a while before it has)
ON_MODES_LOW = 0.25
COVERED_LOW = 0.5  # share of the modes the fixed-latent points reach, past half the run
WINDOW = 8  # log lines per amplitude window of the oscillation test
SWING_GROWTH = 2.0  # each of two successive windows' swing this many times the one before
SWING_MIN = 1.0  # and the last swing at least this large (logit units)
FIXED_POINTS, FIXED_IMAGES = 512, 64  # fixed latents whose samples are looked at


@dataclass(frozen=True)
class Verdict:
    problem: str  # "d_wins", "collapse", "off_modes", "oscillation"
    since: int  # the step its streak began
    detail: str
    advice: str

    def line(self) -> str:
        return f"{self.detail} since step {self.since:,}: {self.advice}"


ADVICE = {
    "d_wins": "try a stronger --r1 (or --r1 1 where it is off), --spectral-norm, or a lower --lr",
    "collapse": "try --mixture 50, a stronger --r1, or --loss hinge",
    "off_modes": "try a lower --lr, a stronger --r1, or more --steps",
    "oscillation": "try a lower --lr or --lr-schedule linear, or --ema 0.999 for the exported generator",
}


def _streak_start(rows: list[dict], holds) -> int | None:
    """The step at which the latest unbroken run of lines where holds(row) began, if it reaches the last
    line and has at least PERSIST lines; else None."""
    n = 0
    for row in reversed(rows):
        if not holds(row):
            break
        n += 1
    return rows[len(rows) - n]["step"] if n >= PERSIST else None


def _swing_since(rows: list[dict]) -> int | None:
    """The first step of the window where D(real) - D(fake) began swinging with growing amplitude, if it
    still does: three windows of WINDOW lines whose peak-to-peak swings (about a linear trend) grow by
    SWING_GROWTH each, the last at least SWING_MIN."""
    gaps = [r["d_real"] - r["d_fake"] for r in rows if "d_real" in r and "d_fake" in r]
    if len(gaps) < 3 * WINDOW:
        return None
    swings = []
    for w in range(3):
        part = np.asarray(gaps[len(gaps) - (3 - w) * WINDOW : len(gaps) - (2 - w) * WINDOW or None])
        t = np.arange(len(part))
        trend = np.polyval(np.polyfit(t, part, 1), t)
        swings.append(float(np.ptp(part - trend)))
    if swings[2] >= SWING_MIN and swings[2] >= SWING_GROWTH * swings[1] and swings[1] >= SWING_GROWTH * swings[0]:
        return rows[len(rows) - 3 * WINDOW]["step"]
    return None


def diagnose(rows: list[dict], loss: str = "ns", steps: int | None = None) -> list[Verdict]:
    """The problems the log lines `rows` show at their last line (none: healthy); `steps`, the run's length,
    lets the mode test wait for half of it."""
    rows = [r for r in rows if "d_real" in r and "d_fake" in r]
    found = []
    if loss != "wgan-gp":  # a critic's scores are not logits: no scale says "winning"

        def winning(r):
            return r["d_real"] - r["d_fake"] >= GAP_WIN and (loss != "ns" or r.get("g_loss", 0.0) >= G_LOSS_WIN)

        since = _streak_start(rows, winning)
        if since is not None:
            gap = rows[-1]["d_real"] - rows[-1]["d_fake"]
            found.append(
                Verdict(
                    "d_wins", since, f"the discriminator is winning (D(real) - D(fake) = {gap:.1f})", ADVICE["d_wins"]
                )
            )

    def collapsed(r):
        return r.get("diversity", 1.0) < DIVERSITY_LOW or r.get("mode_share", 0.0) > MODE_SHARE_HIGH

    settled = (steps or 0) / 2

    def off_modes(r):
        return r["step"] >= settled and (
            r.get("on_modes", 1.0) < ON_MODES_LOW or r.get("modes_covered", 1.0) < COVERED_LOW
        )

    since = _streak_start(rows, off_modes)
    if since is not None:
        last = rows[-1]
        reached = f", {last['modes_covered']:.0%} of the modes reached" if "modes_covered" in last else ""
        found.append(
            Verdict(
                "off_modes",
                since,
                f"training is not converging ({last['on_modes']:.0%} of the fixed-latent samples within 3 sigma of "
                f"a mode{reached})",
                ADVICE["off_modes"],
            )
        )
    since = _streak_start(rows, collapsed)
    if since is not None:
        last = rows[-1]
        what = (
            f"{last['mode_share']:.0%} of the fixed-latent samples in one mode"
            if last.get("mode_share", 0.0) > MODE_SHARE_HIGH
            else f"fixed-latent samples {last['diversity']:.2f}x as diverse as real data"
        )
        found.append(Verdict("collapse", since, f"the generator is collapsing ({what})", ADVICE["collapse"]))
    since = _swing_since(rows)
    if since is not None:
        found.append(
            Verdict("oscillation", since, "D(real) - D(fake) swings with growing amplitude", ADVICE["oscillation"])
        )
    return found


def run_verdicts(run) -> list[Verdict]:
    """The verdicts of a run directory's log.jsonl at its last line."""
    from .checkpoint import read_log, read_run_config

    config = read_run_config(run)
    return diagnose(read_log(run), config.get("loss", "ns"), config.get("steps"))


def summary(verdicts: list[Verdict]) -> str:
    """One line: 'healthy' or the verdicts, earliest first."""
    if not verdicts:
        return "healthy (no sign of a winning discriminator, collapse or oscillation)"
    return "; ".join(v.line() for v in sorted(verdicts, key=lambda v: v.since))


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs of rows of x (flattened samples)."""
    f = np.asarray(x, np.float64).reshape(len(x), -1)
    sq = np.einsum("ij,ij->i", f, f)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * f @ f.T, 0.0)
    n = len(f)
    return float(np.sqrt(d2)[np.triu_indices(n, 1)].mean()) if n > 1 else 0.0


def mode_look(points: np.ndarray, centers: np.ndarray, sigma: float) -> dict:
    """mode_share: the share of points whose nearest mode centre is the most common one; on_modes: the share
    within 3 sigma of their nearest centre (the mode metrics' "high quality"); modes_covered: the share of
    modes holding at least a fifth of their expected count of such points (the mode metrics' "captured")."""
    p, c = np.asarray(points, np.float64), np.asarray(centers, np.float64)
    d2 = ((p[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    nearest = d2.argmin(axis=1)
    near = np.sqrt(d2.min(axis=1)) <= 3.0 * sigma
    on_each = np.bincount(nearest[near], minlength=len(c))
    return {
        "mode_share": float(np.bincount(nearest, minlength=len(c)).max() / len(p)),
        "on_modes": float(near.mean()),
        "modes_covered": float((on_each >= len(p) / len(c) / 5).mean()),
    }
