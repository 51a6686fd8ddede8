"""gantools: train GANs in PyTorch, export them to ONNX, generate and score samples.

The public API is imported lazily so that `import gantools` (and the CLI's
`--help`) never pays for torch or onnxruntime.
"""

__version__ = "0.1.0"

__all__ = ["GanToolsError", "GateFailed", "train", "export", "generate", "score", "__version__"]

from .errors import GanToolsError, GateFailed

_LAZY = {
    "train": ("gantools.train", "train"),
    "export": ("gantools.export", "export_run"),
    "generate": ("gantools.generate", "generate"),
    "score": ("gantools.metrics.score", "score"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'gantools' has no attribute {name!r}")
