"""The one place that opens ONNX Runtime sessions.

`--device auto` uses CUDA when a session really gets the CUDA provider
(checked with `session.get_providers()`, since `get_available_providers()`
lists CUDA on any machine with onnxruntime-gpu), and quietly uses the CPU
otherwise: on a machine without an NVIDIA driver CUDA is never even tried,
so nothing is logged.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np

from .distributed import cpu_share, launched_size, local_rank
from .errors import GanToolsError

DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
FORMAT_VERSION = "1"
LANE_MIN_FLOPS = 4e6  # OnnxGenerator.run_batches runs batches of at least this much arithmetic in lanes


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise GanToolsError("onnxruntime is not installed: pip install onnxruntime-gpu (or onnxruntime)") from None
    return onnxruntime


@functools.cache
def cuda_unavailable_reason() -> str | None:
    """None when ONNX Runtime may use CUDA here; else why not (probed once per process)."""
    ort = _ort()
    if CUDA not in ort.get_available_providers():
        return "this onnxruntime build has no CUDA provider (pip install onnxruntime-gpu)"
    driver = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        ctypes.CDLL(driver)
    except OSError:
        return "no NVIDIA driver found (cannot load " + driver + ")"
    if hasattr(ort, "preload_dlls"):
        try:  # CUDA/cuDNN from the pip-installed nvidia packages that PyTorch brings, if any
            ort.preload_dlls()
        except Exception:  # noqa: BLE001 - best effort; the session check below decides
            pass
    return None


def check_external_data(path: Path) -> None:
    """Refuse a model whose weights point to files outside its own folder (ONNX external data).

    ONNX Runtime would read whatever such a reference names (../../secrets, /etc/...) as weights.
    """
    import mmap

    if path.stat().st_size == 0:
        return  # nothing to refer to anything: ONNX Runtime reports the empty file below
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data.find(b"location") < 0:  # every external-data entry has the key "location": none here
            return  # (and the onnx package, slow to import, is not imported)
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not parseable: ONNX Runtime reports it below
        return
    folder = path.resolve().parent
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if Path(location).is_absolute() or folder not in target.parents:
            raise GanToolsError(
                f"{path} takes weights from {location!r}, outside its own folder; refusing to "
                "read it (re-export the model with its data beside it)"
            )


def open_session(path, device: str = "auto", trusted: bool = False, threads: int | None = None):
    """An InferenceSession on `device`; a missing or corrupt file is a GanToolsError.

    A model that is not `trusted` (one gantools did not just build itself) is checked for external-data
    references outside its folder first. `threads`: ONNX Runtime's intra-op threads on the CPU (default:
    its own choice, one per core, or this process's share of them under torchrun).
    """
    ort = _ort()
    if device not in DEVICES:
        raise GanToolsError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    path = Path(path)
    if path.is_dir():
        raise GanToolsError(f"{path} is a folder; give an exported model file (.onnx)")
    if not path.is_file():
        raise GanToolsError(f"no such model file: {path}")
    if not trusted:
        check_external_data(path)
    reason = cuda_unavailable_reason() if device != "cpu" else "not asked for"
    if device == "cuda" and reason:
        raise GanToolsError(f"--device cuda: ONNX Runtime cannot use CUDA here: {reason}; use --device cpu")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    cuda_options = {}
    if launched_size() > 1:  # one of several processes on this machine: its own GPU, its share of the cores
        cuda_options["device_id"] = local_rank()
        options.intra_op_num_threads = cpu_share()
    if threads is not None:
        options.intra_op_num_threads = threads
    providers = [(CUDA, cuda_options), CPU] if reason is None else [CPU]
    previous = 2
    try:
        ort.set_default_logger_severity(3 if device == "cuda" else 4)  # no error spam when probing CUDA
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own types for bad files
        import re

        text = str(exc).strip()
        opset = re.search(r"Opset (\d+)", text)
        if opset and ("ValidateOpset" in text or "not supported" in text or "under development" in text):
            raise GanToolsError(
                f"{path} needs ONNX opset {opset.group(1)}, which onnxruntime {ort.__version__} "
                "does not support: upgrade onnxruntime, or re-export the model with this "
                "gantools"
            ) from None
        kernel = re.search(r"Could not find an implementation for (\w+)\((\d+)\)", text)
        if kernel:  # a valid model whose operator and element type this build has no kernel for (fp16 on old ORT)
            raise GanToolsError(
                f"{path}: onnxruntime {ort.__version__} has no {kernel.group(1)} (opset "
                f"{kernel.group(2)}) kernel for this model's types on this device: upgrade "
                "onnxruntime (or, scoring with --precision fp16, use fp32)"
            ) from None
        first = text.splitlines()[0] if text else type(exc).__name__
        raise GanToolsError(f"{path} is not a valid ONNX model (truncated or corrupt?): {first[:200]}") from None
    finally:
        ort.set_default_logger_severity(previous)
    if device == "cuda" and session.get_providers()[0] != CUDA:
        raise GanToolsError(
            "--device cuda: the CUDA provider failed to load (CUDA 12/13 and cuDNN 9 "
            "libraries needed); use --device cpu"
        )
    return session


def session_provider(session) -> str:
    return "cuda" if session.get_providers()[0] == CUDA else "cpu"


def read_metadata(session) -> dict:
    return dict(session.get_modelmeta().custom_metadata_map)


class _OnnxModel:
    """Shared loading and validation of gantools-exported models."""

    role = ""

    def __init__(self, path, device: str = "auto", session=None):
        """`session`: one already open on `path` (describe_model reads the role first)."""
        self.path = Path(path)
        self.session = session or open_session(self.path, device)
        self.metadata = meta = read_metadata(self.session)
        if meta.get("gantools_format") is None:
            raise GanToolsError(
                f"{self.path} is not a gantools export (no gantools metadata); "
                "make one with `gantools export RUN_DIR -o FILE.onnx`"
            )
        if meta["gantools_format"] != FORMAT_VERSION:
            raise GanToolsError(
                f"{self.path} has gantools format {meta['gantools_format']}; "
                f"this gantools reads format {FORMAT_VERSION}: re-export it"
            )
        if meta.get("role") != self.role:
            raise GanToolsError(f"{self.path} is a {meta.get('role')}, not a {self.role}")
        try:
            self.num_classes = int(meta["num_classes"])
            self.sample_shape = tuple(int(d) for d in json.loads(meta["sample_shape"]))
            self.kind = meta["kind"]
            self.class_names = json.loads(meta.get("class_names", "[]"))
        except (KeyError, ValueError, TypeError) as exc:
            raise GanToolsError(f"{self.path}: damaged gantools metadata ({exc})") from None
        ranks = {"image": 3, "points": 1}
        if (
            self.kind not in ranks
            or len(self.sample_shape) != ranks[self.kind]
            or min(self.sample_shape) < 1
            or self.num_classes < 0
        ):
            raise GanToolsError(
                f"{self.path}: damaged gantools metadata (kind {self.kind!r}, sample_shape "
                f"{list(self.sample_shape)}, num_classes {self.num_classes}); re-export it"
            )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.provider = session_provider(self.session)

    def _check_graph_fits(self, io, name: str, tail) -> None:
        """The graph's `name` is [batch, *tail], as its metadata says (dims the graph leaves open pass)."""
        found = next((a.shape for a in io if a.name == name), None)
        if (
            found is None
            or len(found) != 1 + len(tail)
            or any(isinstance(d, int) and d != t for d, t in zip(found[1:], tail, strict=True))
        ):
            raise GanToolsError(
                f"{self.path}: its metadata promises {name} of shape [batch, "
                f"{', '.join(map(str, tail))}] but the graph has {found}; the file was altered "
                "after export: re-export it"
            )

    def _check_inputs(self, expected):
        if self.input_names != expected:
            raise GanToolsError(
                f"{self.path}: expected inputs {expected}, found {self.input_names}; "
                "it was not written by gantools export"
            )

    def _run(self, feed) -> np.ndarray:
        """The model's first output; a NaN or Inf in it is a broken model, never a sample or a score."""
        out = self.session.run(None, feed)[0]
        if np.isfinite(out.sum(dtype=np.float64)):  # float32 values cannot overflow a float64 sum: finite iff all are
            return out
        bad = ~np.isfinite(out).reshape(len(out), -1).all(axis=1)
        if bad.any():
            raise GanToolsError(
                f"{self.path} output NaN or Inf for {int(bad.sum())} of {len(out)} inputs: the "
                f"model is broken (diverged training or a damaged file); retrain or re-export it"
            )
        return out

    def in_lane(self):
        """This model on a single-threaded CPU session of its own, to run beside others like it (map_on_lanes),
        each from one thread at a time; the tests check its outputs are the main session's, bit for bit."""
        lane = copy.copy(self)
        lane.session = open_session(self.path, "cpu", trusted=True, threads=1)
        return lane

    def _feed(self, first_name, first, y):
        feed = {first_name: np.ascontiguousarray(first, dtype=np.float32)}
        if self.num_classes:
            if y is None:
                raise GanToolsError(f"{self.path} is conditional: class labels are needed")
            feed["y"] = np.ascontiguousarray(y, dtype=np.int64)
        return feed


class OnnxGenerator(_OnnxModel):
    """The generator protocol over an ONNX session: z [B, latent_dim] (+ y [B]) -> samples."""

    role = "generator"

    def __init__(self, path, device: str = "auto", session=None):
        super().__init__(path, device, session)
        try:
            self.latent_dim = int(self.metadata["latent_dim"])
        except (KeyError, ValueError) as exc:
            raise GanToolsError(f"{self.path}: damaged gantools metadata (latent_dim: {exc})") from None
        self._check_inputs(["z", "y"] if self.num_classes else ["z"])
        self._check_graph_fits(self.session.get_inputs(), "z", [self.latent_dim])
        self._check_graph_fits(self.session.get_outputs(), "x", self.sample_shape)

    def __call__(self, z, y=None) -> np.ndarray:
        return self._run(self._feed("z", z, y))

    def run_batches(self, inputs):
        """(z, y, x) for each (z, y) of `inputs`, in order, where x = self(z, y), bit for bit.

        On the CPU, when the first batch holds at least LANE_MIN_FLOPS of arithmetic (sample_flops per sample),
        the batches run in lanes (map_on_lanes): one single-threaded session per core, each taking the next
        batch when it is free. Smaller batches cost more to hand over than they save and stay on the main
        session (bench/generate_speed.py measures both modes, which is how LANE_MIN_FLOPS was set). ONNX
        Runtime's ConvTranspose works one image at a time, so its threads only split each image's small GEMM;
        an MLP's GEMMs are small at these batches and its threads mostly wait."""
        inputs = iter(inputs)
        first = next(inputs, None)
        if first is None:
            return
        inputs = itertools.chain([first], inputs)
        lanes = self.lanes if lane_count(self) and len(first[0]) * self.sample_flops >= LANE_MIN_FLOPS else []
        if not lanes:
            for z, y in inputs:
                yield z, y, self(z, y)
            return
        from .threads import map_on_lanes

        yield from map_on_lanes(lanes, lambda g, zy: (*zy, g(*zy)), inputs)

    @functools.cached_property
    def lanes(self) -> list:
        """run_batches' copies of this generator in lanes (in_lane), opened on first use: one per core this
        process may use (none when it may use one, or runs on CUDA)."""
        return [self.in_lane() for _ in range(lane_count(self))]

    @functools.cached_property
    def sample_flops(self) -> float:
        """Floating-point operations of one sample through this model (sample_flops)."""
        return sample_flops(self.path)


def lane_count(*models) -> int:
    """How many lanes `models` can run in side by side: one per core this process may use (its share under
    torchrun) when all of them run on the CPU and there are two cores or more; else 0."""
    from .threads import usable_cores

    cores = cpu_share() or usable_cores()
    return cores if cores >= 2 and all(m.provider == "cpu" for m in models) else 0


_NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def sample_flops(path) -> float:
    """2 x the multiply-adds of one sample through an ONNX file's Conv, ConvTranspose, Gemm and MatMul nodes,
    from the shapes ONNX Runtime's profiler records in one run at batch 1 (zeros in; basic optimisation and no
    prepacking, so that every node keeps its weights among its inputs). ONNX shape inference cannot resolve
    the reshapes PyTorch's exporter computes from shapes, and the `onnx` package is slow to import."""
    import tempfile

    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.add_session_config_entry("session.disable_prepacking", "1")
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=[CPU])
        session.run(
            None,
            {
                i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], _NUMPY_TYPES[i.type])
                for i in session.get_inputs()
            },
        )
        events = json.loads(Path(session.end_profiling()).read_text())
    total = 0
    for event in events:
        op = event.get("args", {}).get("op_name")
        if event.get("cat") != "Node" or op not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        a, b = [[*shape.values()][0] for shape in event["args"]["input_type_shape"][:2]]  # {type: dims}
        out = [*event["args"]["output_type_shape"][0].values()][0]
        if op == "Conv":  # each output takes Cin/groups x kernel multiply-adds
            total += 2 * math.prod(out) * math.prod(b[1:])
        elif op == "ConvTranspose":  # each input spreads over Cout/groups x kernel outputs
            total += 2 * math.prod(a) * math.prod(b[1:])
        elif op == "Gemm":  # A holds M x K, the output M x N
            total += 2 * math.prod(out) * (math.prod(a) // out[0])
        else:
            total += 2 * math.prod(out) * a[-1]
    return float(total)


class OnnxDiscriminator(_OnnxModel):
    """x (+ y) -> one logit per sample, with the decision threshold it was exported with."""

    role = "discriminator"

    def __init__(self, path, device: str = "auto", session=None):
        super().__init__(path, device, session)
        self.threshold = float(self.metadata.get("decision_threshold", 0.0))
        self._check_inputs(["x", "y"] if self.num_classes else ["x"])
        self._check_graph_fits(self.session.get_inputs(), "x", self.sample_shape)

    def __call__(self, x, y=None) -> np.ndarray:
        return self._run(self._feed("x", x, y))


def _typed(value: str):
    """A metadata string as the value it spells (ONNX stores every value as text): 17, 0.96, [1, 8, 8], "digits"."""
    spelled = {"True": True, "False": False, "None": None, "": None}  # as Python wrote them
    if value in spelled:
        return spelled[value]
    try:
        return json.loads(value)
    except ValueError:
        return value


def describe_model(path, device: str = "auto") -> dict:
    """Metadata, inputs, outputs and provider of any gantools export (generator, discriminator, classifier)."""
    session = open_session(path, device)
    meta = read_metadata(session)
    if meta.get("gantools_format") is None:
        raise GanToolsError(f"{path} is not a gantools export (no gantools metadata)")
    if meta.get("role") in ("generator", "discriminator"):  # the class also checks the inputs
        (OnnxGenerator if meta["role"] == "generator" else OnnxDiscriminator)(path, device, session)

    def io(args):
        return [
            {"name": a.name, "type": a.type, "shape": [d if isinstance(d, int) else str(d) for d in a.shape]}
            for a in args
        ]

    return {
        "path": str(path),
        "provider": session_provider(session),
        "metadata": {k: _typed(v) for k, v in sorted(meta.items())},
        "inputs": io(session.get_inputs()),
        "outputs": io(session.get_outputs()),
    }
