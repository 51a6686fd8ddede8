"""Seeded latents: sample i of seed S always gets the same z, whatever the batching.

z_i = numpy.random.default_rng([S, i]).standard_normal(d, dtype=float32).
A generator object per sample costs ~25 µs of Python, more than a small
generator's inference, so `latents_for` computes the same numbers for many
samples at once: SeedSequence's hash, PCG64's seeding and output, and the
fast path of numpy's float32 ziggurat, vectorised over samples. The draws
that leave the fast path (about 0.7%) are finished by numpy itself, from the
exact bit-generator state, set through its public state dict. numpy's
ziggurat tables are read off numpy at first use (by feeding its bit
generator chosen words), not restated here; tests compare the result with
the one-generator-per-sample definition.
"""

from __future__ import annotations

import functools

import numpy as np

_CHUNK = 4096  # samples vectorised together
_U32 = 0xFFFFFFFF
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier


def latents_for(seed: int, start: int, n: int, latent_dim: int) -> np.ndarray:
    """z for samples start..start+n-1 of `seed`: float32 [n, latent_dim], N(0, I)."""
    out = np.empty((n, latent_dim), dtype=np.float32)
    if start + n > 1 << 32 or seed >= 1 << 32:  # multi-word SeedSequence entropy: the direct definition
        for row, i in enumerate(range(start, start + n)):
            out[row] = _latent_of(seed, i, latent_dim)
        return out
    for first in range(0, n, _CHUNK):
        m = min(_CHUNK, n - first)
        out[first:first + m] = _latent_chunk(seed, np.arange(start + first, start + first + m, dtype=np.uint64),
                                             latent_dim)
    return out


def _latent_of(seed: int, i: int, latent_dim: int) -> np.ndarray:
    return np.random.default_rng([seed, i]).standard_normal(latent_dim, dtype=np.float32)


def labels_for(start: int, n: int, num_classes: int, fixed_class: int | None = None) -> np.ndarray | None:
    """Class of samples start..start+n-1: `fixed_class`, else i mod num_classes (balanced)."""
    if not num_classes:
        return None
    if fixed_class is not None:
        return np.full(n, fixed_class, dtype=np.int64)
    return np.arange(start, start + n, dtype=np.int64) % num_classes


# --- SeedSequence([seed, i]).generate_state(4, uint64), vectorised over i (numpy/random/bit_generator.pyx) ---

def _seed_words(seed: int, idx: np.ndarray) -> list[np.ndarray]:
    """The four uint64 words PCG64 is seeded with, for entropy [seed, i] (each < 2**32) per element of idx."""
    mult_a, mult_b = 0x931E8875, 0x58F38DED
    h = 0x43B0D7E5  # the hash constant advances the same way whatever the data

    def hashmix(v):
        nonlocal h
        v = (v ^ h) * np.uint64(h * mult_a & _U32) & np.uint64(_U32)
        h = h * mult_a & _U32
        return v ^ (v >> np.uint64(16))

    def mix(x, y):
        r = (np.uint64(0xCA01F9DD) * x - np.uint64(0x4973F715) * y) & np.uint64(_U32)
        return r ^ (r >> np.uint64(16))

    zero = np.zeros_like(idx)
    pool = [hashmix(np.full_like(idx, seed)), hashmix(idx.copy()), hashmix(zero), hashmix(zero)]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    hb, words = 0x8B51F9DD, []
    for i in range(8):
        v = (pool[i % 4] ^ np.uint64(hb)) * np.uint64(hb * mult_b & _U32) & np.uint64(_U32)
        hb = hb * mult_b & _U32
        words.append(v ^ (v >> np.uint64(16)))
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


def _add128(hi, lo, b_hi, b_lo):
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
def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray]:
    """(wi, ki) of numpy's float32 ziggurat: a draw r gives x = rabs * wi[idx] when rabs < ki[idx]
    (idx = r & 255, sign = bit 8, rabs = r >> 9). Read off numpy by feeding its PCG64 chosen 32-bit words."""
    bits = np.random.PCG64(0)
    gen = np.random.Generator(bits)
    base = bits.state

    def draw(word: int) -> tuple[bool, np.float32]:
        bits.state = {**base, "has_uint32": 1, "uinteger": word}
        x = gen.standard_normal(dtype=np.float32)
        return bits.state["state"]["state"] == base["state"]["state"], x  # no further word taken: fast path

    def fast(idx: int, rabs: int) -> bool:  # rabs has 23 bits; 2**23 stands for "past them all"
        return rabs < 1 << 23 and draw((rabs << 9) | idx)[0]

    # rabs = 1: x = wi exactly (where rabs = 1 is on the fast path; elsewhere wi is never used)
    wi = np.array([draw((1 << 9) | idx)[1] for idx in range(256)], np.float32)
    ki = np.empty(256, np.uint64)
    for idx in range(256):
        # the smallest rabs that leaves the fast path; near 2**23 x[idx-1] / x[idx] by the tables' construction,
        # so gallop outwards from there to bracket it, then bisect (a handful of probes, not 23)
        guess = min(max(int(2 ** 23 * float(wi[idx - 1]) / float(wi[idx])), 0), 1 << 23) if idx else 1 << 22
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
    return wi, ki


def _latent_chunk(seed: int, idx: np.ndarray, d: int) -> np.ndarray:
    wi, ki = _ziggurat_tables()
    w = _seed_words(seed, idx)
    init_hi, init_lo = w[0], w[1]
    inc_hi = (w[2] << np.uint64(1)) | (w[3] >> np.uint64(63))
    inc_lo = (w[3] << np.uint64(1)) | np.uint64(1)
    hi, lo = _step(np.zeros_like(idx), np.zeros_like(idx), inc_hi, inc_lo)
    hi, lo = _step(*_add128(hi, lo, init_hi, init_lo), inc_hi, inc_lo)
    states, words = [(hi, lo)], []
    for _ in range((d + 1) // 2):
        hi, lo = _step(hi, lo, inc_hi, inc_lo)
        states.append((hi, lo))
        out = _output(hi, lo)
        words += [out & np.uint64(_U32), out >> np.uint64(32)]  # PCG64 hands out the low half first
    r = np.stack(words[:d], axis=1)
    table = (r & np.uint64(0xFF)).astype(np.intp)
    rabs = (r >> np.uint64(9)) & np.uint64(0x7FFFFF)
    z = rabs.astype(np.float32) * wi[table]
    z = np.where((r >> np.uint64(8)) & np.uint64(1), -z, z)
    slow = rabs >= ki[table]
    lanes = np.flatnonzero(slow.any(axis=1))
    if len(lanes):
        bits = np.random.PCG64(0)
        gen = np.random.Generator(bits)
        first = slow[lanes].argmax(axis=1)
        for lane, j in zip(lanes.tolist(), first.tolist(), strict=True):
            s_hi, s_lo = (int(a[lane]) for a in states[(j + 1) // 2])  # the state before word j was taken
            bits.state = {"bit_generator": "PCG64",
                          "state": {"state": s_hi << 64 | s_lo, "inc": int(inc_hi[lane]) << 64 | int(inc_lo[lane])},
                          "has_uint32": j % 2, "uinteger": int(r[lane, j]) if j % 2 else 0}
            z[lane, j:] = gen.standard_normal(d - j, dtype=np.float32)
    return z
