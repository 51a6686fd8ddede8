"""Scale-out under torchrun: the ranks torchrun started, one process group, disjoint shards of the work.

torchrun sets WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE. Without it
(or with one process) `current()` is a world of one: no process group, no
torch import, every command exactly as before. With several processes the
process group is created on first use: Gloo for CPU work and ONNX Runtime
jobs, NCCL when training on CUDA. Collectives time out (GANTOOLS_TIMEOUT
seconds, default 1800) instead of hanging for ever; a rank that exits with
an error makes torchrun stop the others.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from .errors import GanToolsError

DEFAULT_TIMEOUT_S = 1800


@dataclass(frozen=True)
class World:
    """This process's place among the ranks; a world of one when not launched by torchrun."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that prints, writes logs, checkpoints and merged files."""
        return self.rank == 0

    def shard(self, n: int, batch_size: int) -> tuple[int, int]:
        """[start, stop) of this rank's items among n: whole batches, contiguous, ranks in order.

        Batches keep the boundaries a single process would use, so each item
        is computed in exactly the same batch as in a one-process run.
        """
        base, extra = divmod(-(-n // batch_size), self.size)  # earlier ranks take the odd batches
        first = self.rank * base + min(self.rank, extra)
        last = first + base + (self.rank < extra)
        return min(first * batch_size, n), min(last * batch_size, n)

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            with self._peers_alive():
                dist.barrier()

    @contextlib.contextmanager
    def _peers_alive(self):
        """A collective that fails because another rank died: one line naming it, not a traceback."""
        try:
            yield
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise GanToolsError(
                f"lost the other processes of this torchrun job ({first}); the first failing rank's error says why"
            ) from None

    def sum(self, values):
        """The float64 sum over ranks of `values` (an array of any shape), on every rank."""
        import numpy as np

        values = np.asarray(values, dtype=np.float64)
        if self.size == 1:
            return values
        import torch
        import torch.distributed as dist

        t = torch.from_numpy(np.ascontiguousarray(values)).clone()
        with self._peers_alive():
            dist.all_reduce(t)
        return t.numpy()

    def gather(self, obj) -> list | None:
        """[rank 0's obj, rank 1's, ...] on rank 0, None elsewhere (numpy arrays travel pickled)."""
        if self.size == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.size if self.main else None
        with self._peers_alive():
            dist.gather_object(obj, out, dst=0)
        return out

    @contextlib.contextmanager
    def local_main_first(self):
        """Run the block on each machine's local rank 0 first, then on the other ranks: one of them
        fills a per-machine cache (the Inception export) and the others find it there."""
        if self.local_rank != 0:
            self.barrier()
        yield
        if self.local_rank == 0:
            self.barrier()


_WORLD: World | None = None


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise GanToolsError(f"${name} must be an integer, got {os.environ[name]!r}") from None


def launched_size() -> int:
    """The number of processes torchrun started (1 without torchrun); reads the environment only."""
    return _env_int("WORLD_SIZE", 1)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def local_size() -> int:
    """Processes torchrun started on this machine."""
    return _env_int("LOCAL_WORLD_SIZE", 1)


def cpu_share() -> int | None:
    """The threads one of several processes launched on this machine should use (its share of the cores);
    None when this process is alone, so the runtime's own default stands."""
    if launched_size() <= 1:
        return None
    from .threads import usable_cores

    return max(1, usable_cores() // local_size())


def _leave() -> None:
    """Destroy the process group at exit: Gloo's threads left running abort the process as it ends."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def leave_together() -> None:
    """After a command succeeded on this rank: wait for every rank, then destroy the process group, so that no
    rank tears Gloo down while a peer is still finishing (once in a CI run a rank that left first aborted at exit,
    SIGABRT, with its work done). The atexit _leave stays for ranks that fail."""
    if _WORLD is not None and _WORLD.size > 1:
        _WORLD.barrier()
        _leave()


def current(backend: str = "gloo") -> World:
    """This process's World, joining the process group (with `backend`) on the first call under torchrun."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    size = launched_size()
    if size <= 1:
        _WORLD = World()
        return _WORLD
    import datetime

    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=_env_int("GANTOOLS_TIMEOUT", DEFAULT_TIMEOUT_S))
    if not dist.is_initialized():
        import atexit

        dist.init_process_group(backend=backend, timeout=timeout)
        atexit.register(_leave)
    _WORLD = World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local_rank(), local_size=local_size())
    return _WORLD
