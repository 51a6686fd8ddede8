"""OpenMP's wait policy for PyTorch's CPU threads, chosen before torch loads in each process that computes
with PyTorch (training; scoring with --precision bf16).

libgomp's default lets a waiting thread spin: fastest on an idle machine.
But when another process holds a core, each of a training step's many small
parallel regions waits for a descheduled thread, for up to a time slice:
the digits DCGAN ran 3.3x and the ring MLP 3.9x slower beside one CPU-bound
process. Threads that sleep while waiting (OMP_WAIT_POLICY=PASSIVE) lose
almost nothing under that load (1.02x), but cost 30-50% on an idle machine
(bench/train_speed.py). So: PASSIVE when other processes keep the CPU busy
as training starts, libgomp's default otherwise; a value the user set wins.
The policy changes no arithmetic: the same seed and thread count give the
same weights either way.

Also here: map_ahead, the one way gantools computes work a few items ahead
of its consumer in a thread pool (image decoding, latents on a GPU).
"""

from __future__ import annotations

import os
import time

BUSY_CORES = 0.25  # other processes using at least this much CPU at start count as load


def _cpu_times() -> tuple[int, int]:
    """(total, idle) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(values), values[3] + values[4]


def busy_cores(interval: float = 0.1) -> float:
    """How many cores other processes keep busy, sampled over `interval` s while this one sleeps (0 off Linux)."""
    try:
        total0, idle0 = _cpu_times()
        time.sleep(interval)
        total1, idle1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return 0.0
    total = total1 - total0
    return 0.0 if total <= 0 else (total - (idle1 - idle0)) / total * (os.cpu_count() or 1)


def choose_wait_policy() -> str:
    """Set OMP_WAIT_POLICY for this process (unless the user did) and return it ("default" when unset)."""
    if "OMP_WAIT_POLICY" not in os.environ and busy_cores() >= BUSY_CORES:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return os.environ.get("OMP_WAIT_POLICY", "default")


def map_ahead(pool, fn, items: list, ahead: int = 1):
    """fn(item) for each item, in order; while the caller works on one, the next `ahead` are computed in
    `pool` (None: each is computed when asked, in the caller's thread)."""
    if pool is None:
        yield from map(fn, items)
        return
    from collections import deque

    pending = deque(pool.submit(fn, item) for item in items[:ahead])
    for i in range(len(items)):
        if i + ahead < len(items):
            pending.append(pool.submit(fn, items[i + ahead]))
        yield pending.popleft().result()
