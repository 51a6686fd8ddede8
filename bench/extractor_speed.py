"""Inception features: gantools' ONNX Runtime extractor per batch size, vs PyTorch eager (pytorch-fid's way).

Same network, same images (32x32, resized to 299x299 inside the network),
same process. --runs rounds of one pass of every contender (after a warm-up
pass each); each rate is the median, printed as images/s, GFLOP/s (11.42
GFLOP per image), the fraction of the machine's MatMul peak measured in the
same run, and the speed relative to fp32 ONNX Runtime at batch 32: the
median over rounds of the per-image time ratios ("paired", not moved by the
VM's speed drifting between rounds). The opt-in reduced precisions are
timed beside fp32 and their FID drift is measured: the FID between the even and odd
halves of the built-in digits (--drift-n each), against fp32's. fp16 always;
bf16 (PyTorch, oneDNN) on CPUs with AVX512-BF16 or AMX, or anywhere with
--bf16-emulated (then its speed says nothing, its drift is the same).

    python bench/extractor_speed.py --runs 3
"""

import statistics

import numpy as np
import torch
from timing import INCEPTION_GFLOP, bench_parser, interleaved_times, matmul_peak, paired_ratio, save_json


def main():
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=32, help="image side (resized to 299 inside)")
    parser.add_argument("--drift-n", type=int, default=400, help="digits per half for the FID drifts")
    parser.add_argument(
        "--bf16-emulated",
        action="store_true",
        help="time bf16 and measure its drift on a CPU without bf16 arithmetic too",
    )
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    sizes = (32,) if args.quick else (1, 8, 32, 64)

    from gantools.metrics.features import TorchBf16Extractor, cpu_has_bf16, inception_module, make_extractor

    peak = matmul_peak(runs=3 if args.quick else 5)
    ours = make_extractor("inception", kind="image")
    half = make_extractor("inception", kind="image", precision="fp16")
    eager, _ = inception_module()
    result = {"peak": peak, "runs": runs, "provider": ours.provider, "rows": []}
    print(
        f"provider: {ours.provider}, torch threads: {torch.get_num_threads()}, "
        f"{args.size}x{args.size} -> 299x299, median of {runs}"
    )
    run = {"onnxruntime": ours, "onnxruntime fp16": half, "torch eager": lambda x: eager(torch.from_numpy(x))}
    contenders = [("onnxruntime", b) for b in sizes] + [
        ("onnxruntime fp16", 32),
        ("torch eager", 50 if not args.quick else 32),
    ]
    native_bf16 = cpu_has_bf16()
    if native_bf16 or args.bf16_emulated:
        run["torch bf16"] = TorchBf16Extractor(*inception_module())
        contenders.append(("torch bf16", 32))
    result["bf16"] = "native" if native_bf16 else "emulated" if args.bf16_emulated else "not run"
    passes, counts = {}, {}
    for name, b in contenders:
        n = counts[name, b] = max(2 * b, 64 if not args.quick else 32)
        images = np.random.default_rng(0).random((n, 3, args.size, args.size), dtype=np.float32)

        def one_pass(name=name, b=b, images=images):
            with torch.no_grad():
                for i in range(0, len(images), b):
                    run[name](images[i : i + b])

        passes[name, b] = one_pass
    times = interleaved_times(passes, runs)
    per_image = {key: [t / counts[key] for t in times[key]] for key in passes}
    print(
        f"{'contender':22s} {'batch':>5s} {'img/s':>7s} {'GFLOP/s':>8s} {'% of peak':>9s} {'x fp32 @32, paired':>19s}"
    )
    for name, b in contenders:
        rate = 1 / statistics.median(per_image[name, b])
        gflops = rate * INCEPTION_GFLOP
        relative = paired_ratio(per_image["onnxruntime", 32], per_image[name, b])
        print(f"{name:22s} {b:5d} {rate:7.2f} {gflops:8.1f} {gflops / peak['gflops']:9.1%} {relative:18.2f}x")
        result["rows"].append(
            {
                "contender": name,
                "batch": b,
                "img_per_s": rate,
                "gflops": gflops,
                "fraction_of_peak": gflops / peak["gflops"],
                "paired_vs_fp32_batch32": relative,
                "seconds": times[name, b],
                "images_per_pass": counts[name, b],
            }
        )
    reduced = {
        name: run[contender]
        for name, contender in (("fp16", "onnxruntime fp16"), ("bf16", "torch bf16"))
        if contender in run
    }
    result["fid_drift"] = fid_drift(ours, reduced, 64 if args.quick else args.drift_n)
    print(
        f"bf16: PyTorch's CPU probes say this CPU {'computes' if native_bf16 else 'does not compute'} bf16 "
        f"(AVX512-BF16 or AMX): bf16 {result['bf16']}"
        + ("" if native_bf16 else " (gantools refuses --precision bf16 here)")
    )
    save_json(args.json, result)


def fid_drift(fp32, reduced: dict, n: int) -> dict:
    """FID of the digits' even vs odd halves (n each) with fp32 and each reduced-precision extractor, and
    each one's drift relative to fp32."""
    from gantools.data import load_source
    from gantools.metrics.fid import frechet_distance

    images = load_source("digits").x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    halves = images[0 : 2 * n : 2], images[1 : 2 * n : 2]
    fids = {}
    for name, ex in {"fp32": fp32, **reduced}.items():
        a, b = (np.concatenate([ex(h[i : i + 32])[0] for i in range(0, n, 32)]).astype(np.float64) for h in halves)
        fids[name] = frechet_distance(
            a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False), rows1=a, rows2=b
        )
    out = {"n": n, "fid_fp32": fids["fp32"]}
    for name in reduced:
        drift = fids[name] / fids["fp32"] - 1
        print(
            f"FID of the digits' halves ({n} vs {n}): fp32 {fids['fp32']:.4f}, {name} {fids[name]:.4f}: "
            f"{name} drift {drift:+.3%}"
        )
        out[name] = {"fid": fids[name], "relative_drift": drift}
    return out


if __name__ == "__main__":
    main()
