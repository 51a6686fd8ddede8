"""Generation and Inception extraction on ONNX Runtime's CUDA provider with IOBinding, fp32 and fp16.

fp16 is gantools' own `--precision fp16` extractor: fp32 in and out, convolutions in half precision.
When the machine's CPU computes bf16 (AVX512-BF16 or AMX, as GPU hosts' often do), `--precision bf16`
(PyTorch on the CPU) is timed against fp32 on the CPU provider too.

Inputs are copied to the GPU once and outputs stay there (IOBinding), so the
rates are the device's, not PCIe's. The peak is a square MatMul through the
same runtime, per precision. Run by bench/gpu.sh; `--dry-run` runs the same
code on the CPU provider with small sizes (to check it before a GPU is lent).
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import INCEPTION_GFLOP, matmul_onnx, median_time


def session(path, provider):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=[provider])


def bound_rate(sess, feed: dict, device: str, runs: int) -> float:
    """Runs per second of `sess` with inputs on the device and outputs left there (median of `runs`)."""
    import onnxruntime as ort

    binding = sess.io_binding()
    for name, value in feed.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, device, 0))
    for out in sess.get_outputs():
        binding.bind_output(out.name, device)
    sess.run_with_iobinding(binding)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()
        times.append(time.perf_counter() - t0)
    return 1 / statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU provider, small sizes")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    provider, device = ("CPUExecutionProvider", "cpu") if args.dry_run else ("CUDAExecutionProvider", "cuda")
    n_mm, batch, runs = (512, 4, 2) if args.dry_run else (8192, 128, 10)
    import onnxruntime as ort

    from gantools.metrics.features import inception_onnx_path

    result = {"provider": provider, "onnxruntime": ort.__version__, "rows": []}
    if args.dry_run:
        print("dry run on the CPU: small sizes, so the rates below only show that the code runs")
    tmp = Path(tempfile.mkdtemp(prefix="gantools-gpu-"))
    for fp16 in (False, True):
        precision = "fp16" if fp16 else "fp32"
        mm = tmp / f"mm-{precision}.onnx"
        mm.write_bytes(matmul_onnx(n_mm, fp16).SerializeToString())
        a = np.random.default_rng(0).random((n_mm, n_mm), dtype=np.float32).astype(np.float16 if fp16 else np.float32)
        try:
            peak = bound_rate(session(mm, provider), {"a": a, "b": a}, device, runs) * 2 * n_mm**3 / 1e9
        except Exception as exc:  # noqa: BLE001 - e.g. no fp16 MatMul kernel on the CPU provider
            print(f"{precision}: MatMul not run ({str(exc).splitlines()[0][:120]})")
            continue
        extractor = inception_onnx_path(precision=precision)[0]  # what `score --precision` runs
        images = np.random.default_rng(0).random((batch, 3, 32, 32), dtype=np.float32)
        try:
            rate = bound_rate(session(extractor, provider), {"x": images}, device, runs) * batch
        except Exception as exc:  # noqa: BLE001
            print(f"{precision}: extraction not run ({str(exc).splitlines()[0][:120]})")
            continue
        pct = rate * INCEPTION_GFLOP / peak
        print(
            f"{precision}: MatMul peak {peak:.0f} GFLOP/s; Inception batch {batch}: {rate:.1f} img/s "
            f"({pct:.1%} of peak)"
        )
        result["rows"].append(
            {"precision": precision, "peak_gflops": peak, "inception_img_per_s": rate, "fraction_of_peak": pct}
        )
    result["cpu_bf16"] = cpu_bf16(32 if not args.dry_run else 4, runs)
    from gantools.runtime import OnnxGenerator
    from gantools.train import train

    train(tmp / "digits", data="digits", steps=1, progress=False)
    from gantools.export import export_run

    export_run(tmp / "digits", tmp / "digits.onnx", discriminator=False)
    g = OnnxGenerator(tmp / "digits.onnx", "cpu")
    gb = 64 if args.dry_run else 4096
    z = np.random.default_rng(0).standard_normal((gb, g.latent_dim), dtype=np.float32)
    rate = bound_rate(session(tmp / "digits.onnx", provider), {"z": z}, device, runs) * gb
    print(f"generation (digits DCGAN, fp32, batch {gb}): {rate:.0f} samples/s")
    result["generation_samples_per_s"] = rate
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


def cpu_bf16(batch: int, runs: int) -> dict | None:
    """img/s of `--precision bf16` (PyTorch, oneDNN) and fp32 (ONNX Runtime's CPU provider) on this machine's
    CPU, when it computes bf16; None otherwise."""
    from gantools.metrics.features import TorchBf16Extractor, cpu_has_bf16, inception_module, make_extractor

    if not cpu_has_bf16():
        print("CPU: no bf16 arithmetic (AVX512-BF16 or AMX): --precision bf16 not timed")
        return None
    images = np.random.default_rng(0).random((batch, 3, 32, 32), dtype=np.float32)
    rates = {}
    for name, ex in (
        ("fp32", make_extractor("inception", kind="image", device="cpu")),
        ("bf16", TorchBf16Extractor(*inception_module())),
    ):
        rates[name] = batch / median_time(lambda ex=ex: ex(images), max(3, runs // 3))[0]
    print(
        f"CPU Inception batch {batch}: fp32 (ONNX Runtime) {rates['fp32']:.1f} img/s, bf16 (PyTorch) "
        f"{rates['bf16']:.1f} img/s: {rates['bf16'] / rates['fp32']:.2f}x"
    )
    return rates


if __name__ == "__main__":
    main()
