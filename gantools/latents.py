"""Seeded latents: sample i of seed S always gets the same z, whatever the batching.

z_i = numpy.random.default_rng([S, i]).standard_normal(d, dtype=float32).
A generator object per sample costs ~25 µs of Python, more than a small
generator's inference, so `latents_for` computes the same numbers for many
samples at once: SeedSequence's hash, PCG64's seeding and output, and numpy's
float32 ziggurat (fast path and wedges), vectorised over samples.
`latents_and_uniforms` does the same for generators seeded with up to two
more words, followed by one `random()` draw (refine.py's candidates). numpy's
ziggurat tables are read off numpy at first use (by feeding its bit generator
chosen words), not restated here. The few draws this cannot decide exactly
(the base layer's tail, wedge tests too close to call) are finished by numpy
itself from the exact bit-generator state, set through its public state dict.
Tests compare the result with the one-generator-per-sample definition.
"""

from __future__ import annotations

import functools

import numpy as np

# Samples vectorised together. Each step's temporaries are then 64 KiB per uint64 word, under glibc's 128 KiB
# threshold for mapping a block of its own: longer chunks had every temporary mapped, page-faulted and unmapped
# again.
_CHUNK = 8192
_GATHER_VALUES = 1 << 16  # lanes x latent_dim that leave the fast path, finished together
_U32 = 0xFFFFFFFF
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier
# A wedge test whose two sides differ by less than this is left to numpy: our fi table is numpy's to ~2e-8
# (it is recomputed from wi, known to float32 precision), and numpy may round its float sums differently.
_WEDGE_MARGIN = 1e-6


def latents_for(seed: int, start: int, n: int, latent_dim: int) -> np.ndarray:
    """z for samples start..start+n-1 of `seed`: float32 [n, latent_dim], N(0, I)."""
    return _seeded_draws(seed, np.arange(start, start + n, dtype=np.uint64), latent_dim, (), uniform=False)[0]


def latents_and_uniforms(seed: int, indices, latent_dim: int, tail: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """(z float32 [n, latent_dim], u float64 [n]): for each i of `indices`, g = default_rng([seed, i, *tail]),
    z_i = g.standard_normal(latent_dim, dtype=float32), then u_i = g.random(). Each word of `tail` is an int
    or an array with one value per index."""
    return _seeded_draws(seed, np.asarray(indices, dtype=np.uint64), latent_dim, tail, uniform=True)


def _seeded_draws(seed: int, idx: np.ndarray, latent_dim: int, tail, uniform: bool):
    """(z, u or None) per element of idx for entropy [seed, i, *tail], u only when `uniform`."""
    n = len(idx)
    tail = [np.atleast_1d(np.asarray(word, dtype=np.uint64)) for word in tail]  # [1] (the same for all) or [n]
    out = np.empty((n, latent_dim), dtype=np.float32)
    u = np.empty(n)  # filled only when `uniform`
    if max(seed, *(int(w.max(initial=0)) for w in (idx, *tail))) >= 1 << 32 or len(tail) > 2:  # multi-word
        # SeedSequence entropy, or more words than its pool holds: the direct definition
        for row, entropy in enumerate(zip(*(w.tolist() for w in np.broadcast_arrays(idx, *tail)), strict=True)):
            g = np.random.default_rng([seed, *entropy])
            out[row] = g.standard_normal(latent_dim, dtype=np.float32)
            if uniform:
                u[row] = g.random()
        return out, u if uniform else None
    # Lanes that leave the fast path are finished once _GATHER_VALUES of their values have gathered (or at the
    # end): that work has a fixed cost per call, and a chunk of small latents has few such lanes, while many
    # long ones are slow to finish together.
    slow, pending = [], 0  # _finish_lanes' arguments per chunk (rows of `out`), and how many lanes they hold
    for first in range(0, n, _CHUNK):
        m = min(_CHUNK, n - first)
        rows = slice(first, first + m)
        chunk_tail = [w if len(w) == 1 else w[rows] for w in tail]
        out[rows], chunk_u, lanes = _latent_chunk(seed, idx[rows], latent_dim, chunk_tail, uniform)
        if uniform:
            u[rows] = chunk_u
        if lanes is not None:
            slow.append((first + lanes[0], *lanes[1:]))
            pending += len(lanes[0])
        if slow and (pending * latent_dim >= _GATHER_VALUES or first + m == n):
            joined = (_joined(list(argument)) for argument in zip(*slow, strict=True))
            _finish_lanes(out, u if uniform else None, *joined)
            slow, pending = [], 0
    return out, u if uniform else None


def _joined(parts: list):
    """One argument of _finish_lanes over several chunks: arrays, or lists of per-step (hi, lo) states."""
    if isinstance(parts[0], list):
        return [
            tuple(np.concatenate([p[step][half] for p in parts]) for half in (0, 1)) for step in range(len(parts[0]))
        ]
    return np.concatenate(parts)


def labels_for(start: int, n: int, num_classes: int, fixed_class: int | None = None) -> np.ndarray | None:
    """Class of samples start..start+n-1: `fixed_class`, else i mod num_classes (balanced)."""
    if not num_classes:
        return None
    if fixed_class is not None:
        return np.full(n, fixed_class, dtype=np.int64)
    return np.arange(start, start + n, dtype=np.int64) % num_classes


# --- SeedSequence([seed, i]).generate_state(4, uint64), vectorised over i (numpy/random/bit_generator.pyx) ---


def _seed_words(seed: int, idx: np.ndarray, tail: list) -> list[np.ndarray]:
    """The four uint64 words PCG64 is seeded with, for entropy [seed, i, *tail] (each < 2**32; tail: at most two
    arrays of one word or one per element of idx) per element of idx. SeedSequence hashes in 32-bit
    arithmetic: uint32 arrays wrap as it does."""
    mult_a, mult_b = 0x931E8875, 0x58F38DED
    h = 0x43B0D7E5  # the hash constant advances the same way whatever the data
    u32 = np.uint32

    def hashmix(v):
        nonlocal h
        v = (v ^ u32(h)) * u32(h * mult_a & _U32)
        h = h * mult_a & _U32
        return v ^ (v >> u32(16))

    def mix(x, y):
        r = u32(0xCA01F9DD) * x - u32(0x4973F715) * y
        return r ^ (r >> u32(16))

    # the words that are the same for every sample (the seed, a one-word tail or its zero padding, and what the
    # first mixing round makes of them) stay one-element arrays until they meet the sample index: broadcasting
    # does the rest. The pool holds four words, so entropy [seed, i] hashes as [seed, i, 0, 0].
    entropy = [np.array([seed]), idx, *tail, *[np.zeros(1)] * (2 - len(tail))]
    pool = [hashmix(word.astype(np.uint32)) for word in entropy]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    hb, words = 0x8B51F9DD, []
    for i in range(8):
        v = (pool[i % 4] ^ u32(hb)) * u32(hb * mult_b & _U32)
        hb = hb * mult_b & _U32
        words.append((v ^ (v >> u32(16))).astype(np.uint64))
    return [words[2 * k] | (words[2 * k + 1] << np.uint64(32)) for k in range(4)]


# --- PCG64 (128-bit LCG, XSL-RR output) on (hi, lo) uint64 pairs ---


def _mul64(a: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
    """(high, low) 64-bit halves of the 128-bit product a * b (b a Python int < 2**64)."""
    m32 = np.uint64(_U32)
    a0, a1 = a & m32, a >> np.uint64(32)
    b0, b1 = np.uint64(b & _U32), np.uint64(b >> 32)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> np.uint64(32)) + (p01 & m32) + (p10 & m32)
    high = p11 + (p01 >> np.uint64(32)) + (p10 >> np.uint64(32)) + (mid >> np.uint64(32))
    return high, a * np.uint64(b & 0xFFFFFFFFFFFFFFFF)


def _add128(hi: np.ndarray, lo: np.ndarray, b_hi: np.ndarray, b_lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low = lo + b_lo
    return hi + b_hi + (low < lo).astype(np.uint64), low


def _step(hi, lo, inc_hi, inc_lo):
    """state * MULT + inc (mod 2**128)."""
    mh, ml = _PCG_MULT >> 64, _PCG_MULT & 0xFFFFFFFFFFFFFFFF
    carry_hi, low = _mul64(lo, ml)
    high = carry_hi + hi * np.uint64(ml) + lo * np.uint64(mh)
    return _add128(high, low, inc_hi, inc_lo)


def _output(hi, lo):
    rot = hi >> np.uint64(58)
    x = hi ^ lo
    return (x >> rot) | (x << ((np.uint64(64) - rot) & np.uint64(63)))


# --- numpy's float32 ziggurat ---


@functools.lru_cache(maxsize=1)
def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(wi, ki, fi) of numpy's float32 ziggurat: a draw r gives x = rabs * wi[idx] when rabs < ki[idx]
    (idx = r & 255, sign = bit 8, rabs = r >> 9). wi and ki are read off numpy by feeding its PCG64 chosen
    32-bit words; fi[i] is the density exp(-x_i^2 / 2) at layer i's outer edge x_i = wi[i] * 2**23 (fi[0] = 1,
    the top), which only the wedge tests use."""
    bits = np.random.PCG64(0)
    gen = np.random.Generator(bits)
    base = bits.state

    def draw(word: int) -> tuple[bool, float]:
        bits.state = {**base, "has_uint32": 1, "uinteger": word}
        x = gen.standard_normal(dtype=np.float32)
        return bits.state["state"]["state"] == base["state"]["state"], x  # no further word taken: fast path

    def fast(idx: int, rabs: int) -> bool:  # rabs has 23 bits; 2**23 stands for "past them all"
        return rabs < 1 << 23 and draw((rabs << 9) | idx)[0]

    # rabs = 1: x = wi exactly (where rabs = 1 is on the fast path; elsewhere wi is never used)
    wi = np.array([draw((1 << 9) | idx)[1] for idx in range(256)], np.float32)
    ki = np.empty(256, np.uint32)
    for idx in range(256):
        # the smallest rabs that leaves the fast path; near 2**23 x[idx-1] / x[idx] by the tables' construction,
        # so gallop outwards from there to bracket it, then bisect (a handful of probes, not 23)
        guess = min(max(int(2**23 * float(wi[idx - 1]) / float(wi[idx])), 0), 1 << 23) if idx else 1 << 22
        step = 4
        if fast(idx, guess):
            low, high = guess + 1, min(guess + step, 1 << 23)
            while fast(idx, high):
                low, high, step = high + 1, min(high + 2 * step, 1 << 23), 2 * step
        else:
            low, high = max(0, guess - step), guess  # ki may be 0 (layer 1: never the fast path)
            while low > 0 and not fast(idx, low):
                low, high, step = max(0, low - 2 * step), low, 2 * step
        while low < high:
            mid = (low + high) // 2
            low, high = (mid + 1, high) if draw((mid << 9) | idx)[0] else (low, mid)
        ki[idx] = low
    edge = wi.astype(np.float64) * 2.0**23
    fi = np.exp(-0.5 * edge * edge).astype(np.float32)
    fi[0] = 1.0
    return wi, ki, fi


def _latent_chunk(seed: int, idx: np.ndarray, d: int, tail: list, uniform: bool):
    """(z of samples idx from the fast path, their u (None unless `uniform`), None or what _finish_lanes needs for
    the rows that left it: (rows, first slow draw, states, words, inc_hi, inc_lo))."""
    w = _seed_words(seed, idx, tail)
    inc_hi = (w[2] << np.uint64(1)) | (w[3] >> np.uint64(63))
    inc_lo = (w[3] << np.uint64(1)) | np.uint64(1)
    # PCG64's seeding: state 0, one step (0 * MULT + inc = inc), add the seed words, one more step
    hi, lo = _step(*_add128(inc_hi, inc_lo, w[0], w[1]), inc_hi, inc_lo)
    # d words from (d + 1) // 2 outputs; random() then takes the next whole output (an odd word left over from
    # the last one is dropped: numpy's next_uint64 ignores the buffered half)
    states, words = _draw_words([(hi, lo)], inc_hi, inc_lo, (d + 1) // 2 + uniform)
    u = _uniform(np.ascontiguousarray(words[:, -2:]).view("<u8")[:, 0]) if uniform else None
    z, slow = _fast_path(words[:, :d])
    lanes = np.flatnonzero(slow.any(axis=1))
    if not len(lanes):
        return z, u, None
    return (
        z,
        u,
        (
            lanes,
            slow[lanes].argmax(axis=1),
            [(h[lanes], lo_[lanes]) for h, lo_ in states],
            words[lanes],
            inc_hi[lanes],
            inc_lo[lanes],
        ),
    )


def _uniform(outputs: np.ndarray) -> np.ndarray:
    """numpy's random() of these uint64 PCG64 outputs: their top 53 bits over 2**53."""
    return (outputs >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _draw_words(states: list, inc_hi, inc_lo, steps: int) -> tuple[list, np.ndarray]:
    """`steps` more PCG64 outputs as uint32 words (low half first), and the states list extended by them."""
    hi, lo = states[-1]
    states, outputs = list(states), []
    for _ in range(steps):
        hi, lo = _step(hi, lo, inc_hi, inc_lo)
        states.append((hi, lo))
        outputs.append(_output(hi, lo))
    return states, np.stack(outputs, axis=1).astype("<u8", copy=False).view("<u4")  # low half first


def _fast_path(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, slow) per uint32 word: the ziggurat's fast-path value, and whether the word leaves the fast path."""
    wi, ki, _ = _ziggurat_tables()
    table = r & np.uint32(0xFF)
    rabs = r >> np.uint32(9)
    x = (rabs.astype(np.float32) * wi.take(table)).view(np.uint32)
    x |= (r & np.uint32(0x100)) << np.uint32(23)  # bit 8 is the sign
    return x.view(np.float32), rabs >= ki.take(table)


def _finish_lanes(z, uniforms, lanes, first, states, words, inc_hi, inc_lo) -> None:
    """Rows `lanes` of z from their first slow draw on, as numpy's loop would make them, and of `uniforms`
    (unless None) the random() after them.

    A slow draw in layer i > 0 (a wedge) reads one more word u and keeps x when
    (fi[i-1] - fi[i]) * u + fi[i] < exp(-x^2 / 2); either way it has taken two words,
    and a rejected one draws again for the same output. Those decisions are vectorised
    here, each lane being one output index j and one word shift s; the base layer's
    tail (i = 0), decisions within _WEDGE_MARGIN of the threshold and lanes that run
    out of words are finished by numpy itself from the exact state before that word.
    """
    _, _, fi = _ziggurat_tables()
    d, n_extra = z.shape[1], 2 + z.shape[1] // 16
    states, w = _draw_words(states, inc_hi, inc_lo, n_extra)
    w = np.concatenate([words, w], axis=1)
    n_words = w.shape[1]
    x, slow = _fast_path(w)
    accept, sure = np.zeros_like(slow), np.zeros_like(slow)  # the last word's test needs a word past the end
    at = np.nonzero(slow[:, :-1])
    layer = (w[at] & np.uint32(0xFF)).astype(np.intp)
    u = (w[at[0], at[1] + 1] >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-24)
    x_wedge = x[at].astype(np.float64)
    gap = (fi[layer - 1] - fi[layer]) * u + fi[layer] - np.exp(-0.5 * x_wedge * x_wedge)
    accept[at] = gap < 0
    sure[at] = (np.abs(gap) > _WEDGE_MARGIN) & (layer != 0)
    # next_slow[lane, c]: the first slow word at or after word c (n_words if none)
    next_slow = np.where(slow, np.arange(n_words), n_words)
    next_slow = np.minimum.accumulate(next_slow[:, ::-1], axis=1)[:, ::-1]
    next_slow = np.pad(next_slow, ((0, 0), (0, 1)), constant_values=n_words)
    shift_from = np.zeros((len(lanes), d + 1), np.intp)  # how much s grows at each output index
    j, s, active = first.copy(), np.zeros_like(first), np.arange(len(lanes))
    by_numpy: list[tuple[int, int, int]] = []
    while len(active):
        k = j[active] + s[active]
        decided = sure[active, k]
        by_numpy += zip(active[~decided].tolist(), k[~decided].tolist(), j[active[~decided]].tolist(), strict=True)
        active, k = active[decided], k[decided]
        keep = accept[active, k]  # kept: output j is x[k]; s grows by 1 from j + 1. Rejected: by 2 from j
        j[active] += keep
        s[active] += 2 - keep
        shift_from[active, j[active]] += 2 - keep
        next_k = next_slow[active, j[active] + s[active]]
        j[active] = next_k - s[active]
        open_ = j[active] < d
        ran_out = open_ & (next_k == n_words)
        by_numpy += zip(active[ran_out].tolist(), next_k[ran_out].tolist(), j[active[ran_out]].tolist(), strict=True)
        active = active[open_ & ~ran_out]
    out = np.arange(d)
    word = np.minimum(out + np.cumsum(shift_from[:, :d], axis=1), n_words - 1)
    z[lanes] = np.where(out >= first[:, None], np.take_along_axis(x, word, axis=1), z[lanes])
    if uniforms is not None:  # a lane took d + its shifts words: random() takes the output after ceil(that / 2)
        taken = np.minimum((d + shift_from.sum(axis=1) + 1) // 2, len(states) - 1)[:, None]
        hi, lo = (
            np.take_along_axis(np.stack([s[half] for s in states], axis=1), taken, axis=1)[:, 0] for half in (0, 1)
        )
        uniforms[lanes] = _uniform(_output(*_step(hi, lo, inc_hi, inc_lo)))
    if by_numpy:
        _finish_by_numpy(z, uniforms, lanes, by_numpy, states, w, inc_hi, inc_lo)


def _finish_by_numpy(z, uniforms, lanes, by_numpy, states, words, inc_hi, inc_lo) -> None:
    """For each (row, k, j) of by_numpy: z[lanes[row], j:] drawn by numpy from the state before word k, then
    uniforms[lanes[row]] (unless None)."""
    bits = np.random.PCG64(0)
    gen = np.random.Generator(bits)
    d = z.shape[1]
    for row, k, j in by_numpy:
        s_hi, s_lo = (int(a[row]) for a in states[(k + 1) // 2])
        bits.state = {
            "bit_generator": "PCG64",
            "state": {"state": s_hi << 64 | s_lo, "inc": int(inc_hi[row]) << 64 | int(inc_lo[row])},
            "has_uint32": k % 2,
            "uinteger": int(words[row, k]) if k % 2 else 0,
        }
        z[lanes[row], j:] = gen.standard_normal(d - j, dtype=np.float32)
        if uniforms is not None:
            uniforms[lanes[row]] = gen.random()
