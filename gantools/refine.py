"""Sampling with the discriminator's help: rejection (DRS) and Metropolis-Hastings (MH-GAN).

A discriminator trained with the non-saturating loss estimates the log
density ratio log p_data(x) / p_model(x) in its logit. Two published ways
use it to correct a generator's samples:

- drs (Azadi et al. 2019): accept candidate x with probability
  sigmoid(F(x) - gamma), F(x) = d - log(1 - exp(d - eps)), d = logit - D_M,
  where D_M is the largest logit of a burn-in set; gamma is the 80th
  percentile of F over that set, so about the top fifth of candidates are
  accepted with probability one half or more. A sample whose candidates are
  all rejected after MAX_TRIES keeps the best of them.
- mh (Turner et al. 2019): an independent Metropolis-Hastings chain of
  CHAIN_LENGTH proposals from the generator, moving from x to x' with
  probability min(1, exp(logit(x') - logit(x))); the sample is the state at
  the end. The chain starts from its first proposal (generation has no real
  data to start from) and the logits are used uncalibrated.

Sample i of seed S draws its candidates (and uniforms) from generators keyed
by (S, i, try), so the output stays a pure function of (seed, i): the same
whatever the batch size or number of workers, like plain sampling.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np

from .errors import GanToolsError
from .latents import labels_for, latents_and_uniforms

METHODS = ("drs", "mh")
MAX_TRIES = 100
DRAW_AHEAD = 1024  # drs candidates drawn at once (each call has a fixed cost of about a millisecond)
CHAIN_LENGTH = 20
PROPOSAL_VALUES = 1 << 22  # latent values (16 MB) of mh proposals held at once, whatever the batch size
BURN_IN = 10_000
GAMMA_PERCENTILE = 80.0
EPS = 1e-6
_CANDIDATE, _BURN_IN = 0x5EF1, 0xB0F1


def find_discriminator(generator_path, given=None, device: str = "cpu"):
    """The discriminator at `given`, else NAME.disc.onnx beside generator NAME.onnx."""
    from .export import disc_path_for
    from .runtime import OnnxDiscriminator

    path = Path(given) if given is not None else disc_path_for(generator_path)
    if given is None and not path.exists():
        raise GanToolsError(
            f"no discriminator {path} beside the generator; pass --discriminator FILE "
            "(or re-export without --no-discriminator)"
        )
    return OnnxDiscriminator(path, device)


def _candidates(seed: int, indices, tries: range, dim: int, key: int):
    """(z [len(tries), n, dim], u [len(tries), n]): candidate t of each sample index i for t in `tries`,
    default_rng([seed, i, key, t])'s standard_normal(dim, float32) then its random(), all computed at once
    (latents.py) instead of a numpy generator per candidate."""
    z, u = latents_and_uniforms(seed, np.tile(indices, len(tries)), dim, (key, np.repeat(tries, len(indices))))
    return z.reshape(len(tries), len(indices), dim), u.reshape(len(tries), len(indices))


class Refiner:
    """Draws refined samples first..first+m-1 of `seed` from a generator and its discriminator."""

    def __init__(self, generator, discriminator, method: str, seed: int, fixed_class: int | None = None):
        if method not in METHODS:
            raise GanToolsError(f"--refine must be one of {', '.join(METHODS)}, got {method!r}")
        loss = discriminator.metadata.get("loss")
        if loss != "ns":
            raise GanToolsError(
                f"--refine needs a discriminator trained with --loss ns (its logit estimates "
                f"log p_data/p_model); {discriminator.path} was trained with {loss}"
            )
        if (
            tuple(discriminator.sample_shape) != tuple(generator.sample_shape)
            or discriminator.num_classes != generator.num_classes
        ):
            raise GanToolsError(f"{discriminator.path} does not fit {generator.path}: other samples or classes")
        self.g, self.d, self.method, self.seed, self.fixed_class = generator, discriminator, method, seed, fixed_class
        if method == "drs":
            self.d_max, self.gamma = self._burn_in()

    def _logits(self, z, y):
        x = self.g(z, y)
        return x, np.asarray(self.d(x, y), dtype=np.float64)

    def _burn_in(self) -> tuple[float, float]:
        """(D_M, gamma) from BURN_IN candidates of their own stream, in chunks of 1,000 (in lanes)."""
        logits = np.concatenate(list(self._in_lanes(Refiner._burn_in_logits, range(0, BURN_IN, 1000))))
        d_max = float(logits.max())
        return d_max, float(np.percentile(self._f(logits, d_max), GAMMA_PERCENTILE))

    def _burn_in_logits(self, first: int) -> np.ndarray:
        idx = np.arange(first, first + 1000)
        z, _ = _candidates(self.seed, idx, range(1), self.g.latent_dim, _BURN_IN)
        return self._logits(z[0], labels_for(first, 1000, self.g.num_classes, self.fixed_class))[1]

    @staticmethod
    def _f(logits, d_max):
        d = np.minimum(logits - d_max, 0.0)
        return d - np.log1p(-np.exp(d - EPS))

    def batch(self, first: int, m: int):
        """(z, y, samples) of refined samples first..first+m-1."""
        idx = np.arange(first, first + m)
        y = labels_for(first, m, self.g.num_classes, self.fixed_class)
        return self._drs(idx, y) if self.method == "drs" else self._mh(idx, y)

    def run_batches(self, jobs: list):
        """self.batch(first, m) for each (first, m) of `jobs`, in order, bit for bit (in lanes)."""
        return self._in_lanes(lambda refiner, job: refiner.batch(*job), jobs)

    def _in_lanes(self, work, items):
        """work(refiner, item) for each of `items`, in order, bit for bit as work(self, item).

        On the CPU, several items run in lanes (map_on_lanes): on a copy of this refiner per lane, over that
        lane's single-threaded sessions of both models, each taking the next item when it is free. A refined
        batch is dozens of small model calls with NumPy between them, which one session's threads cannot fill
        (bench/generate_speed.py measures lanes against one session)."""
        items = list(items)
        lanes = self.lanes if len(items) > 1 else []
        if not lanes:
            return (work(self, item) for item in items)
        from .threads import map_on_lanes

        return map_on_lanes([self._on(g, d) for g, d in lanes], work, items)

    @functools.cached_property
    def lanes(self) -> list:
        """(generator, discriminator) on single-threaded sessions of their own, one pair per lane_count (none on
        a GPU or one core), opened on first use."""
        from .runtime import lane_count

        return [(self.g.in_lane(), self.d.in_lane()) for _ in range(lane_count(self.g, self.d))]

    def _on(self, g, d) -> Refiner:
        """This refiner (its burn-in's D_M and gamma included) over the models g and d."""
        refiner = copy.copy(self)
        refiner.g, refiner.d = g, d
        return refiner

    def _drs(self, idx, y):
        z_out = np.zeros((len(idx), self.g.latent_dim), dtype=np.float32)
        x_out, best = None, np.full(len(idx), -np.inf)
        pending, attempt = np.arange(len(idx)), 0
        while len(pending) and attempt < MAX_TRIES:
            # the next tries of every pending sample drawn at once, about DRAW_AHEAD candidates (a sample accepted
            # sooner leaves its later ones unused): one vectorised draw instead of one per try
            drawn, ahead = pending, min(MAX_TRIES - attempt, -(-DRAW_AHEAD // len(pending)))
            z_ahead, u_ahead = _candidates(
                self.seed, idx[drawn], range(attempt, attempt + ahead), self.g.latent_dim, _CANDIDATE
            )
            still = np.arange(len(drawn))  # where the pending samples are in `drawn`
            for z, u in zip(z_ahead, u_ahead, strict=True):
                z, u = z[still], u[still]
                x, logits = self._logits(z, None if y is None else y[pending])
                if x_out is None:
                    x_out = np.zeros((len(idx), *x.shape[1:]), dtype=x.dtype)
                score = self._f(logits, self.d_max) - self.gamma
                accept = u < 1.0 / (1.0 + np.exp(-score))
                better = accept | (score > best[pending])  # an accepted candidate replaces any fallback
                rows = pending[better]
                z_out[rows], x_out[rows], best[rows] = z[better], x[better], score[better]
                still, pending, attempt = still[~accept], pending[~accept], attempt + 1
                if not len(pending):
                    break
        return z_out, y, x_out

    def _mh(self, idx, y):
        proposals = self._proposals(idx)
        z_cur = next(proposals)[0].copy()  # the chain starts from its first proposal
        x_cur, l_cur = self._logits(z_cur, y)
        for z, u in proposals:
            x, logits = self._logits(z, y)
            move = np.log(np.maximum(u, 1e-300)) < logits - l_cur
            z_cur[move], x_cur[move], l_cur[move] = z[move], x[move], logits[move]
        return z_cur, y, x_cur

    def _proposals(self, idx):
        """(z, u) of each of the CHAIN_LENGTH tries of the samples `idx`, drawn as many tries at once as
        PROPOSAL_VALUES allows (all of them at the default batch size): one vectorised draw instead of
        CHAIN_LENGTH small ones, in bounded memory whatever the batch size."""
        step = max(1, PROPOSAL_VALUES // (len(idx) * self.g.latent_dim))
        for start in range(0, CHAIN_LENGTH, step):
            yield from zip(
                *_candidates(
                    self.seed, idx, range(start, min(start + step, CHAIN_LENGTH)), self.g.latent_dim, _CANDIDATE
                ),
                strict=True,
            )
