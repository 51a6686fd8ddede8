"""OpenMP's wait policy for PyTorch's CPU threads, chosen before torch loads in each process that computes
with PyTorch (training; scoring with --precision bf16), and the thread count that follows load appearing
during training.

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

libgomp reads the policy once, at start, so load that appears later met
spinning threads: 3.5x (digits) and 4.1x (ring) slower (bench/train_speed.py,
"after the start"). While training spins, LoadWatch therefore drops PyTorch
to one thread when other processes keep half a core busy (one thread never
waits for a descheduled partner, and gets a core of its own) and restores the
count when they stop: 1.14x and 1.26x. That can change last bits (the digits
DCGAN's one-channel output bias gradient is a reduction split by thread), so
training logs each change.

Also here: map_ahead, the one way gantools computes work a few items ahead
of its consumer in a thread pool (image decoding, latents on a GPU).
"""

from __future__ import annotations

import os
import time

BUSY_CORES = 0.25  # other processes using at least this much CPU at start count as load
BUSY_CORES_LATER = 0.5  # ... and, while training, this much (a competitor beside spinning threads gets more)
WATCH_SECONDS = 2.0  # the window over which LoadWatch measures the others' load


def _cpu_times() -> tuple[int, int]:
    """(total, idle) jiffies of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(values), values[3] + values[4]


def _load_sample(clock=time.perf_counter) -> tuple[float, float, float]:
    """(wall s, this process's CPU s, all CPUs' busy s) now: what others_busy compares."""
    total, idle = _cpu_times()
    return clock(), time.process_time(), (total - idle) / os.sysconf("SC_CLK_TCK")


def others_busy(before: tuple, after: tuple) -> float:
    """Cores other processes kept busy between two _load_sample samples."""
    wall = after[0] - before[0]
    return 0.0 if wall <= 0 else max(0.0, (after[2] - before[2]) - (after[1] - before[1])) / wall


def busy_cores(interval: float = 0.1) -> float:
    """How many cores other processes keep busy, sampled over `interval` s while this one sleeps (0 off Linux)."""
    try:
        before = _load_sample()
        time.sleep(interval)
        return others_busy(before, _load_sample())
    except (OSError, ValueError, IndexError):
        return 0.0


def choose_wait_policy() -> str:
    """Set OMP_WAIT_POLICY for this process (unless the user did) and return it ("default" when unset)."""
    if "OMP_WAIT_POLICY" not in os.environ and busy_cores() >= BUSY_CORES:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return os.environ.get("OMP_WAIT_POLICY", "default")


class LoadWatch:
    """PyTorch's thread count while training runs with spinning threads: one while other processes keep
    BUSY_CORES_LATER cores busy, the starting count otherwise; measured over WATCH_SECONDS windows."""

    def __init__(self, threads: int):
        self.full = self.current = threads
        self._clock = time.perf_counter
        self._last = self._sample()

    @classmethod
    def for_training(cls, on_cpu: bool, processes: int):
        """A watch when this training spins (the wait policy and thread count left to gantools), else None."""
        import torch

        threads = torch.get_num_threads()
        if not on_cpu or processes > 1 or threads < 2 or {"OMP_WAIT_POLICY", "OMP_NUM_THREADS"} & set(os.environ):
            return None
        try:
            return cls(threads)
        except (OSError, ValueError, IndexError):  # no /proc/stat: not Linux
            return None

    def _sample(self) -> tuple[float, float, float]:
        return _load_sample(self._clock)

    def poll(self) -> int | None:
        """The new thread count when a finished window changed it, else None (cheap between windows)."""
        if self._clock() - self._last[0] < WATCH_SECONDS:
            return None
        before, self._last = self._last, self._sample()
        want = 1 if others_busy(before, self._last) >= BUSY_CORES_LATER else self.full
        return None if want == self.current else self._use(want)

    def _use(self, threads: int) -> int:
        import torch

        torch.set_num_threads(threads)
        self.current = threads
        return threads

    def close(self) -> None:
        """Back to the starting thread count (training in a process that goes on, as tests do)."""
        if self.current != self.full:
            self._use(self.full)


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
