"""Inception features: gantools' ONNX Runtime extractor per batch size, vs PyTorch eager (pytorch-fid's way).

Same network, same images (32x32, resized to 299x299 inside the network),
same process. Each rate is a median of --runs, printed as images/s, GFLOP/s
(11.42 GFLOP per image) and the fraction of the machine's MatMul peak
measured in the same run.

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
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    sizes = (32,) if args.quick else (1, 8, 32, 64)

    from gantools.metrics.features import INCEPTION_ID, OnnxExtractor, inception_module, inception_onnx_path

    peak = matmul_peak(runs=3 if args.quick else 5)
    path, sha = inception_onnx_path()
    ours = OnnxExtractor(path, INCEPTION_ID, sha, channels=3, device="auto")
    eager, _ = inception_module()
    result = {"peak": peak, "runs": runs, "provider": ours.provider, "rows": []}
    print(f"provider: {ours.provider}, torch threads: {torch.get_num_threads()}, "
          f"{args.size}x{args.size} -> 299x299, median of {runs}")
    print(f"{'contender':22s} {'batch':>5s} {'img/s':>7s} {'GFLOP/s':>8s} {'% of peak':>9s}")
    contenders = [("onnxruntime", b) for b in sizes] + [("torch eager", 50 if not args.quick else 32)]
    for name, b in contenders:
        n = max(2 * b, 64 if not args.quick else 32)
        images = np.random.default_rng(0).random((n, 3, args.size, args.size), dtype=np.float32)

        def one_pass(name=name, b=b, images=images):
            with torch.no_grad():
                for i in range(0, len(images), b):
                    chunk = images[i:i + b]
                    ours(chunk) if name == "onnxruntime" else eager(torch.from_numpy(chunk))

        rate = n / median_time(one_pass, runs)[0]
        gflops = rate * INCEPTION_GFLOP
        print(f"{name:22s} {b:5d} {rate:7.2f} {gflops:8.1f} {gflops / peak['gflops']:9.1%}")
        result["rows"].append({"contender": name, "batch": b, "img_per_s": rate, "gflops": gflops,
                               "fraction_of_peak": gflops / peak["gflops"]})
    bf16 = {"avx512_bf16", "amx_bf16"} & cpu_flags()
    print("reduced precision: " + ("this CPU has " + ", ".join(sorted(bf16)) + " (not yet used by gantools)" if bf16
                                   else "this CPU has neither AVX512-BF16 nor AMX-BF16: fp32 only"))
    save_json(args.json, result)


if __name__ == "__main__":
    main()
