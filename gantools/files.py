"""Atomic file writes: a killed run leaves the old file or the new one, never half."""

from __future__ import annotations

import contextlib
import itertools
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it over `path` on success.

    The temporary file lives in the same directory so the final rename is
    atomic on POSIX. On any exception the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    with _removed_on_error(tmp, path):
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)


@contextlib.contextmanager
def _removed_on_error(tmp, path):
    """Remove the temporary file `tmp` when the body fails; an OSError then names `path`, the file the user
    asked for, not ours."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


_NUMBERS = itertools.count()  # write_atomically's temporary names: unique within this process, in every thread


def write_atomically(path, data: bytes | memoryview) -> None:
    """Write `data` to `path` as atomic_path would, in the four system calls of a plain write and a rename.

    For folders of many small files (a PNG per sample): with atomic_path's mkstemp, second open and chmod an
    8x8 PNG took 553 us to write on this project's ext4 disk, this way 301 us (one thread, median of 7). The
    folder must exist; the temporary name has atomic_path's pattern, so remove_stale_temporaries removes
    what a killed run left.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}-{next(_NUMBERS)}.tmp"
    with _removed_on_error(tmp, path):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask gives the usual mode
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)


def remove_stale_temporaries(path, name: str | None = None) -> None:
    """Remove what atomic_path writes of `path` (or of the files matching glob `name` in folder `path`) that a
    killed run left. Call it only where one process writes those files: another's write may be under way."""
    path = Path(path)
    folder, name = (path, name) if name is not None else (path.parent, path.name)
    if folder.is_dir():
        for stale in folder.glob(f".{name}.*.tmp"):
            stale.unlink(missing_ok=True)


def check_output(out, flag: str, inputs=()) -> None:
    """Refuse, before any work, an output path that cannot be written (a file where a folder must be) or that
    is one of the command's inputs (it would destroy the input)."""
    from .errors import GanToolsError

    if out is None:
        return
    target = Path(out).absolute()
    above = _nearest_existing(target.parent)
    if not above.is_dir():
        raise GanToolsError(f"{flag} {out}: {above} is a file, so nothing can be written under it")
    target = target.resolve()
    for spec in inputs:
        if spec is None:
            continue
        path = Path(str(spec))
        path = path if path.exists() else Path(str(spec).rsplit(":", 1)[0])  # SOURCE:train names SOURCE
        if path.exists() and path.resolve() == target:
            raise GanToolsError(f"{flag} {out} is an input of this command; write the output elsewhere")


def _nearest_existing(path: Path) -> Path:
    """`path`, or its closest ancestor that exists (where a missing output folder would be created)."""
    while not path.exists():
        path = path.parent
    return path


def check_room(out, nbytes: int) -> None:
    """Refuse before any work an output that cannot fit on its disk (it would fail at the end, or fill the disk)."""
    import shutil

    from .errors import GanToolsError

    free = shutil.disk_usage(_nearest_existing(Path(out).absolute())).free
    if nbytes > free:
        raise GanToolsError(
            f"{out} would take about {_size(nbytes)}, but its disk has {_size(free)} free: "
            "ask for fewer samples or write elsewhere"
        )


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if nbytes < 1000:
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"


def write_text_atomic(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


_BLOCK_BYTES = 1 << 24  # copy arrays to files in blocks of 16 MiB, so a memory-mapped share is never read whole


def _write_npy(f, chunks) -> None:
    """The .npy of the row-wise concatenation of `chunks` (arrays or memory maps), streamed into open file f."""
    import numpy as np

    first = chunks[0]
    rows = sum(len(c) for c in chunks)
    header = {
        "descr": np.lib.format.dtype_to_descr(first.dtype),
        "fortran_order": False,
        "shape": (rows, *first.shape[1:]),
    }
    np.lib.format.write_array_header_1_0(f, header)
    for block in _row_blocks(chunks, max(1, _BLOCK_BYTES // max(1, first[:1].nbytes))):
        f.write(np.ascontiguousarray(block, dtype=first.dtype).data)


def _row_blocks(chunks, rows: int):
    """The rows of `chunks` in order, as arrays of `rows` rows or more (at most 2 * rows - 1; the last may be
    shorter): small chunks are joined, since each write into a zip entry has a fixed cost, and big ones split."""
    import numpy as np

    def joined(parts):
        return parts[0] if len(parts) == 1 else np.concatenate(parts)  # one part: no copy

    held, count = [], 0
    for c in chunks:
        for i in range(0, len(c), rows):
            held.append(c[i : i + rows])
            count += len(held[-1])
            if count >= rows:
                yield joined(held)
                held, count = [], 0
    if held:
        yield joined(held)


def write_npy_atomic(path, chunks) -> None:
    """np.save of the concatenated chunks, without concatenating them in memory."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            _write_npy(f, chunks)


def write_npz_atomic(path, arrays: dict) -> None:
    """np.savez (uncompressed) of {name: list of row chunks}, streamed; the zip entries carry a fixed
    timestamp, so the same arrays always give the same bytes (whatever the time or number of writers)."""
    import zipfile

    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, chunks in arrays.items():
                info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as f:
                    _write_npy(f, chunks)
