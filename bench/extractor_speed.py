"""Inception features: gantools' ONNX Runtime extractor per batch size, vs PyTorch eager (pytorch-fid's way).

Same network, same images (32x32, resized to 299x299 inside the network),
same process. Each rate is a median of --runs, printed as images/s, GFLOP/s
(11.42 GFLOP per image) and the fraction of the machine's MatMul peak
measured in the same run. The opt-in fp16 extractor (`--precision fp16`) is
timed beside fp32, and its FID drift is measured: the FID between the even
and odd halves of the built-in digits (--drift-n each), fp16 against fp32.

    python bench/extractor_speed.py --runs 3
"""

import numpy as np
import torch
from timing import INCEPTION_GFLOP, bench_parser, matmul_peak, median_time, save_json



def cpu_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            return set(next(line for line in f if line.startswith("flags")).split(":")[1].split())
    except (OSError, StopIteration):
        return set()


def main():
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=32, help="image side (resized to 299 inside)")
    parser.add_argument("--drift-n", type=int, default=400, help="digits per half for the fp16 FID drift")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    sizes = (32,) if args.quick else (1, 8, 32, 64)

    from gantools.metrics.features import inception_module, make_extractor

    peak = matmul_peak(runs=3 if args.quick else 5)
    ours = make_extractor("inception", kind="image")
    half = make_extractor("inception", kind="image", precision="fp16")
    eager, _ = inception_module()
    result = {"peak": peak, "runs": runs, "provider": ours.provider, "rows": []}
    print(f"provider: {ours.provider}, torch threads: {torch.get_num_threads()}, "
          f"{args.size}x{args.size} -> 299x299, median of {runs}")
    print(f"{'contender':22s} {'batch':>5s} {'img/s':>7s} {'GFLOP/s':>8s} {'% of peak':>9s}")
    contenders = [("onnxruntime", b) for b in sizes] + [("onnxruntime fp16", 32),
                                                        ("torch eager", 50 if not args.quick else 32)]
    run = {"onnxruntime": ours, "onnxruntime fp16": half, "torch eager": lambda x: eager(torch.from_numpy(x))}
    for name, b in contenders:
        n = max(2 * b, 64 if not args.quick else 32)
        images = np.random.default_rng(0).random((n, 3, args.size, args.size), dtype=np.float32)

        def one_pass(name=name, b=b, images=images):
            with torch.no_grad():
                for i in range(0, len(images), b):
                    run[name](images[i:i + b])

        rate = n / median_time(one_pass, runs)[0]
        gflops = rate * INCEPTION_GFLOP
        print(f"{name:22s} {b:5d} {rate:7.2f} {gflops:8.1f} {gflops / peak['gflops']:9.1%}")
        result["rows"].append({"contender": name, "batch": b, "img_per_s": rate, "gflops": gflops,
                               "fraction_of_peak": gflops / peak["gflops"]})
    result["fp16_fid_drift"] = fid_drift(ours, half, 64 if args.quick else args.drift_n)
    bf16 = {"avx512_bf16", "amx_bf16"} & cpu_flags()
    print(f"bf16: this CPU has {', '.join(sorted(bf16)) if bf16 else 'neither AVX512-BF16 nor AMX-BF16'}; "
          "ONNX Runtime's CPU provider has no bf16 convolution kernels, so fp16 is the reduced precision offered")
    save_json(args.json, result)


def fid_drift(fp32, fp16, n: int) -> dict:
    """FID of the digits' even vs odd halves (n each) with both extractors, and fp16's relative drift."""
    from gantools.data import load_source
    from gantools.metrics.fid import frechet_distance

    images = load_source("digits").x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    halves = images[0:2 * n:2], images[1:2 * n:2]
    fids = {}
    for name, ex in (("fp32", fp32), ("fp16", fp16)):
        a, b = (np.concatenate([ex(h[i:i + 32])[0] for i in range(0, n, 32)]).astype(np.float64) for h in halves)
        fids[name] = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False),
                                      rows1=a, rows2=b)
    drift = fids["fp16"] / fids["fp32"] - 1
    print(f"FID of the digits' halves ({n} vs {n}): fp32 {fids['fp32']:.4f}, fp16 {fids['fp16']:.4f}: "
          f"fp16 drift {drift:+.3%}")
    return {"n": n, "fid_fp32": fids["fp32"], "fid_fp16": fids["fp16"], "relative_drift": drift}


if __name__ == "__main__":
    main()
