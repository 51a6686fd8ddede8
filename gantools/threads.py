"""PyTorch's CPU threads beside other processes: the thread count training uses as load comes and goes, and
OpenMP's wait policy for the commands that compute with PyTorch without training (train-classifier; scoring
with --precision bf16), chosen before torch loads.

libgomp's default lets a waiting thread spin: fastest on an idle machine.
But when another process holds a core, each of a training step's many small
parallel regions waits for a descheduled thread, for up to a time slice, and
training runs several times slower beside one CPU-bound process
(bench/train_speed.py measures it). Threads that sleep while waiting
(OMP_WAIT_POLICY=PASSIVE) lose less under load but train slower on an idle
machine, and libgomp reads the policy once, at start.

Training therefore keeps libgomp's default and fits the thread count to the
free cores (LoadWatch): as it starts (a 0.1 s probe) and then every 2 s, it
counts the cores other processes keep busy (a core counts when they keep at
least half of it busy) and uses one thread fewer per such core, at least one,
at most the count it started with. Fewer threads never wait for a descheduled
partner, and the count comes back when the load goes (bench/train_speed.py
has the figures). On 2 cores the count is 1 or 2, and the built-in recipes
train bit-identical weights with either (tests/test_train.py): training asks
MKL for thread-count-invariant GEMMs (MKL_CBWR) and runs the narrow
convolutions whose gradient sums oneDNN splits by thread as GEMMs
(models.NarrowConv2d). Other shapes, and 3 threads or more, can change last
bits (oneDNN and PyTorch split some gradient sums by thread), so config.json
records the starting count and log.jsonl each change; set OMP_NUM_THREADS to
fix the count.

Also here: map_ahead, the one way gantools computes work a few items ahead
of its consumer in a thread pool (image decoding, latents on a GPU), and
map_on_lanes, which spreads such work over models on single-threaded
sessions (generation and refinement on the CPU, runtime.py and refine.py).
"""

from __future__ import annotations

import os
import time

BUSY_CORES = 0.25  # other processes using at least this much CPU at start make choose_wait_policy pick PASSIVE
PROBE_SECONDS = 0.1  # a start-up probe of the others' load, while this process sleeps
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


def busy_cores(interval: float = PROBE_SECONDS) -> float:
    """How many cores other processes keep busy, sampled over `interval` s while this one sleeps (0 off Linux)."""
    try:
        before = _load_sample()
        time.sleep(interval)
        return others_busy(before, _load_sample())
    except (OSError, ValueError, IndexError):
        return 0.0


def ask_mkl_for_reproducible_sums() -> None:
    """MKL_CBWR=AUTO,STRICT unless the user set MKL_CBWR: MKL's GEMMs then add in the same order at any thread
    count (its strict conditional numerical reproducibility), so the count LoadWatch picks changes no bit of
    a Linear's or NarrowConv2d's weight gradients. MKL reads it at its first call: call this before torch
    computes anything."""
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")


def choose_wait_policy() -> str:
    """Set OMP_WAIT_POLICY for this process (unless the user did) and return it ("default" when unset)."""
    if "OMP_WAIT_POLICY" not in os.environ and busy_cores() >= BUSY_CORES:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return os.environ.get("OMP_WAIT_POLICY", "default")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def threads_beside(others: float, cores: int, full: int) -> int:
    """Threads for this process when other processes keep `others` of `cores` cores busy: one fewer per core
    they keep at least half busy, at least 1, at most `full`."""
    return max(1, min(full, cores - int(others + 0.5)))


class LoadWatch:
    """PyTorch's thread count while training: threads_beside the others' load as training starts (a 0.1 s
    probe) and then over each WATCH_SECONDS window, within the count it started with."""

    def __init__(self, threads: int, cores: int):
        self.full = self.current = threads
        self.cores = cores
        self._clock = time.perf_counter
        self._last = self._sample()

    @classmethod
    def for_training(cls, on_cpu: bool, processes: int):
        """A started watch when gantools picks the thread count (CPU training in one process, the user having
        set neither OMP_NUM_THREADS nor OMP_WAIT_POLICY), else None."""
        import torch

        threads = torch.get_num_threads()
        if not on_cpu or processes > 1 or threads < 2 or {"OMP_WAIT_POLICY", "OMP_NUM_THREADS"} & set(os.environ):
            return None
        try:
            watch = cls(threads, usable_cores())
            time.sleep(PROBE_SECONDS)  # training's start: a first window while this process does nothing
            watch._refit()
            return watch
        except (OSError, ValueError, IndexError):  # no /proc/stat: not Linux
            return None

    def _sample(self) -> tuple[float, float, float]:
        return _load_sample(self._clock)

    def poll(self) -> int | None:
        """The new thread count when a finished window changed it, else None (cheap between windows)."""
        return None if self._clock() - self._last[0] < WATCH_SECONDS else self._refit()

    def _refit(self) -> int | None:
        """End the window here: the new thread count when the others' load over it changes it, else None."""
        before, self._last = self._last, self._sample()
        want = threads_beside(others_busy(before, self._last), self.cores, self.full)
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


def map_ahead(pool, fn, items, ahead: int = 1):
    """fn(item) for each of the iterable `items`, in order; while the caller works on one, the next `ahead`
    are computed in `pool` (None: each is computed when asked, in the caller's thread)."""
    if pool is None:
        yield from map(fn, items)
        return
    from collections import deque

    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def map_on_lanes(lanes: list, work, items):
    """work(lane, item) for each of the iterable `items`, in order. A lane is something one thread at a time
    may use (gantools': models on single-threaded sessions); each item runs, in a thread of its own, on
    whichever lane is free, at most one item per lane ahead of the caller."""
    import queue
    from concurrent.futures import ThreadPoolExecutor

    free: queue.SimpleQueue = queue.SimpleQueue()  # the lanes no thread is using
    for lane in lanes:
        free.put(lane)

    def run(item):
        lane = free.get()
        try:
            return work(lane, item)
        finally:
            free.put(lane)

    with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="gantools-lane") as pool:
        yield from map_ahead(pool, run, items, ahead=len(lanes))
