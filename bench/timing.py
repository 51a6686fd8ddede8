"""Shared timing for the benchmarks: medians of interleaved runs, the machine's MatMul peak, --quick/--json."""

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few runs: a smoke test, not a result")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    return parser


def save_json(path, result: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {path}")


@contextlib.contextmanager
def cpu_hog(on: bool = True):
    """While inside, one competing CPU-bound process (`python -c 'while True: pass'`) holds a core, as on a
    busy CI runner; it is running before the body starts. `on=False`: nothing (the idle case)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if on else None
    try:
        if hog:
            time.sleep(0.5)
        yield
    finally:
        if hog:
            hog.kill()
            hog.wait()


def openmp_env(settings: dict) -> dict:
    """This environment without the user's OpenMP settings (gantools then picks the threads), plus `settings`."""
    import os

    return {**{k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}, **settings}


def median_time(fn, runs: int) -> tuple[float, list[float]]:
    """(median seconds, all seconds) of fn() over `runs` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


SETTLE_SECONDS = 0.1  # idle before each timed call of interleaved_times


def interleaved_times(contenders: dict, runs: int) -> dict:
    """Seconds of each callable over `runs` rounds, each round calling every one in turn, after one warm-up
    call each: a round's times are taken side by side, so their ratios are not moved by the VM's speed
    drifting over the rounds (paired_ratio). Each timed call starts SETTLE_SECONDS after the previous one
    ended: thread pools spin for a while after a call (ONNX Runtime's, libgomp's), and on 2 cores that
    spinning slowed whatever ran next (the ring's lanes: 1.13M samples/s right after a two-threaded session's
    pass, 1.60M after a 50 ms pause and 1.65M after their own pass; bench/README.md)."""
    for fn in contenders.values():
        fn()  # warm-up: sessions, kernels, caches
    times = {name: [] for name in contenders}
    for _ in range(runs):
        for name, fn in contenders.items():
            time.sleep(SETTLE_SECONDS)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def paired_ratio(slower: list, faster: list) -> float:
    """The median over rounds of slower / faster (times of interleaved_times' rounds)."""
    return statistics.median(a / b for a, b in zip(slower, faster, strict=True))


def compare(contenders: dict, items: int, runs: int, unit: str) -> tuple[dict, float]:
    """Time each callable `runs` times (interleaved), print items/s medians and the first-to-second speed ratio,
    as the ratio of the medians and as the median of the rounds' ratios; return (the medians, that paired ratio)."""
    times = interleaved_times(contenders, runs)
    med = {name: items / statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:12s} median {med[name]:9.2f} {unit}/s   runs: {', '.join(f'{items / v:.2f}' for v in values)}")
    first, second = list(med)[:2]
    paired = paired_ratio(times[second], times[first])
    print(
        f"ratio {first} / {second}: {med[first] / med[second]:.2f}x (median of the {runs} paired ratios: {paired:.2f}x)"
    )
    return med, paired


INCEPTION_GFLOP = 11.422336192  # per 299x299 image: torch.utils.flop_counter on gantools' FIDInception


def matmul_onnx(n: int, fp16: bool = False):
    """An ONNX model of one n x n MatMul (inputs a, b; output c), for measuring a runtime's peak."""
    import onnx
    from onnx import TensorProto, helper

    t = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "mm",
        [helper.make_tensor_value_info(x, t, [n, n]) for x in "ab"],
        [helper.make_tensor_value_info("c", t, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def matmul_peak(size: int = 4096, runs: int = 5) -> dict:
    """The best fp32 GEMM rate (GFLOP/s) this machine reaches here, with every core: square MatMuls through
    ONNX Runtime (MLAS), PyTorch and NumPy's BLAS, median of `runs` each; the highest is "the peak"."""
    import numpy as np

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    flop = 2 * size**3
    rates = {"numpy": flop / median_time(lambda: a @ a, runs)[0] / 1e9}
    try:
        import torch

        t = torch.from_numpy(a)
        rates["torch"] = flop / median_time(lambda: t @ t, runs)[0] / 1e9
    except ImportError:
        pass
    try:
        import onnxruntime as ort

        session = ort.InferenceSession(matmul_onnx(size).SerializeToString(), providers=["CPUExecutionProvider"])
        rates["onnxruntime"] = flop / median_time(lambda: session.run(None, {"a": a, "b": a}), runs)[0] / 1e9
    except ImportError:
        pass
    best = max(rates, key=rates.get)
    print(
        f"MatMul peak ({size}^3 fp32, median of {runs}): {rates[best]:.1f} GFLOP/s by {best} "
        f"({', '.join(f'{k} {v:.1f}' for k, v in rates.items())}); {platform.processor() or platform.machine()}"
    )
    return {"gflops": rates[best], "by": best, "all": rates, "size": size}
