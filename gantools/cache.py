"""The user cache: the exported Inception network and features of real data sets, each checked on read.

A feature file is named KEY-DIGEST.npy, DIGEST being the first 16 hex digits
of the SHA-256 of its array's bytes (of the file's bytes for the Inception
model, PREFIX-DIGEST.onnx). A file whose content no longer matches its name
(truncated by a full disk, damaged, half-copied) is removed with a one-line
notice and rebuilt. Files are written atomically, so two processes filling
the same entry both succeed. Feature files beyond GANTOOLS_CACHE_LIMIT
(default 5G) are evicted, least recently used first; `gantools cache` shows
and clears the cache.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from .errors import GanToolsError

DEFAULT_LIMIT = "5G"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def cache_dir() -> Path:
    """$GANTOOLS_CACHE, else $XDG_CACHE_HOME/gantools, else ~/.cache/gantools."""
    if os.environ.get("GANTOOLS_CACHE"):
        root, name = Path(os.environ["GANTOOLS_CACHE"]), "$GANTOOLS_CACHE"
    else:
        root, name = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gantools", "the cache"
    if root.exists() and not root.is_dir():
        raise GanToolsError(f"{name} {root} is a file; point $GANTOOLS_CACHE at a folder")
    return root


def size_limit() -> int:
    """GANTOOLS_CACHE_LIMIT in bytes ("500M", "5G", "0" for no feature cache at all)."""
    text = os.environ.get("GANTOOLS_CACHE_LIMIT", DEFAULT_LIMIT).strip().upper().removesuffix("B")
    unit = text[-1:] if text[-1:] in _UNITS else ""
    try:
        value = float(text[: len(text) - len(unit)])
    except ValueError:
        raise GanToolsError(f"$GANTOOLS_CACHE_LIMIT must be a size such as 500M or 5G, got {text!r}") from None
    return int(value * _UNITS[unit])


def _notice(path: Path, why: str) -> None:
    print(f"gantools: cache file {path} is {why}; removed, rebuilding it", file=sys.stderr)
    path.unlink(missing_ok=True)


def _digest(chunks) -> str:
    import numpy as np

    h = hashlib.sha256()
    for c in chunks:
        h.update(np.ascontiguousarray(c).data)
    return h.hexdigest()[:16]


def load_features(key: str):
    """The cached features of `key` (a float32 array), or None when absent or damaged (then removed)."""
    import numpy as np

    from .data import ARRAY_READ_ERRORS

    for path in sorted((cache_dir() / "features").glob(f"{key}-*.npy")):
        try:
            features = np.load(path, allow_pickle=False)
        except ARRAY_READ_ERRORS:
            _notice(path, "unreadable")
            continue
        if _digest([features]) != path.stem.rsplit("-", 1)[1]:
            _notice(path, "damaged (its content does not match its checksum)")
            continue
        os.utime(path)  # recently used: evicted last
        return features
    return None


def store_features(key: str, rows) -> None:
    """Store the row chunks of `key`'s features, then keep the feature cache under its size limit."""
    from .files import write_npy_atomic

    limit = size_limit()
    if limit <= 0:
        return
    write_npy_atomic(cache_dir() / "features" / f"{key}-{_digest(rows)}.npy", rows)
    entries = sorted(((p.stat().st_mtime, p) for p in (cache_dir() / "features").glob("*.npy")), reverse=True)
    total = 0
    for _, path in entries:  # newest first: keep what fits
        total += path.stat().st_size
        if total > limit:
            path.unlink(missing_ok=True)


def find_model(prefix: str) -> Path | None:
    """A cached model PREFIX-DIGEST.onnx whose content matches its DIGEST (damaged ones are removed).

    DIGEST is 16 characters, so PREFIX never matches a longer prefix's models (PREFIX-fp16-DIGEST.onnx)."""
    for path in sorted(cache_dir().glob(f"{prefix}-{'?' * 16}.onnx")):
        if _file_sha256(path)[:16] == path.stem.rsplit("-", 1)[1]:
            return path
        _notice(path, "incomplete or damaged")
    return None


def store_model(prefix: str, write) -> Path:
    """Cache a model: write(path) fills a file in a scratch folder, which is then renamed PREFIX-DIGEST.onnx
    (the same file system, so the rename is atomic; a failed write leaves nothing)."""
    import tempfile

    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{prefix}.", dir=root) as scratch:
        built = Path(scratch) / "model.onnx"
        write(built)
        final = root / f"{prefix}-{_file_sha256(built)[:16]}.onnx"
        os.replace(built, final)
    return final


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def entries() -> list[tuple[str, Path, int]]:
    """(kind, path, bytes) of every file gantools keeps in the cache."""
    root = cache_dir()
    found = [("model", p) for p in sorted(root.glob("inception-*.onnx"))]
    found += [("features", p) for p in sorted((root / "features").glob("*.npy"))]
    return [(kind, p, p.stat().st_size) for kind, p in found if p.is_file()]


def clear() -> tuple[int, int]:
    """Remove every cache file gantools made; (files, bytes) removed."""
    removed = entries()
    for _, path, _ in removed:
        path.unlink(missing_ok=True)
    return len(removed), sum(size for _, _, size in removed)
