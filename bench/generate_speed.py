"""Generation: ONNX Runtime vs PyTorch eager per batch size, and `generate` end to end vs bare ONNX Runtime.

The generators have the architectures of the shipped models (each recipe
trained for one step, then exported: speed does not depend on the weights).
1. The same generator through ONNX Runtime and PyTorch eager, on the same
   latents, at batch sizes 1 to 1024: samples/s, the ratio, and the fraction
   of the machine's MatMul peak (FLOPs counted by torch's FlopCounterMode).
   Each pass runs at least 4,096 samples and MIN_PASS_SECONDS through ONNX
   Runtime; --runs rounds of one ORT pass then one eager pass: the medians,
   their ratio, and the median of the rounds' ratios ("paired").
2. `gantools.generate(model, 100000, x.npz)` (seeded latents, inference,
   conversion, the .npz written) against bare `session.run` over the same
   latents at batch 256, median of --runs each, and the median of the
   paired ratios (each generate and the bare pass after it). Each side has
   the only live ONNX Runtime session while it runs, as a `gantools generate`
   process has.

    python bench/generate_speed.py --runs 5
"""

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import bench_parser, interleaved_times, matmul_peak, median_time, paired_ratio, save_json

RECIPES = {"digits-dcgan": "digits", "ring": "ring"}
MIN_PASS_SECONDS = 0.25


def build(tmp: Path, data: str):
    """(ONNX generator, PyTorch generator) of a recipe's architecture."""
    from gantools.checkpoint import latest_checkpoint, load_checkpoint
    from gantools.export import checkpoint_to_modules, export_run
    from gantools.runtime import OnnxGenerator
    from gantools.train import train

    run = tmp / data
    train(run, data=data, steps=1, progress=False)
    export_run(run, tmp / f"{data}.onnx", discriminator=False)
    module, _ = checkpoint_to_modules(load_checkpoint(latest_checkpoint(run)))
    return OnnxGenerator(tmp / f"{data}.onnx", "cpu"), module


def main():
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("-n", type=int, default=100000, help="samples for the end-to-end comparison")
    args = parser.parse_args()
    runs, n = (1, 20000) if args.quick else (args.runs, args.n)
    sizes = (1, 256) if args.quick else (1, 16, 256, 1024)
    peak = matmul_peak(runs=3 if args.quick else 5)
    result = {"peak": peak, "runs": runs, "per_batch": [], "end_to_end": []}
    from torch.utils.flop_counter import FlopCounterMode

    from gantools.generate import generate
    from gantools.latents import latents_for
    from gantools.runtime import open_session

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in RECIPES.items():
            onnx_g, torch_g = build(Path(tmp), data)
            with FlopCounterMode(display=False) as counter:
                torch_g(torch.zeros(1, onnx_g.latent_dim))
            flop = counter.get_total_flops()
            print(f"\n{name}: {flop / 1e6:.2f} MFLOP per sample")
            print(f"{'batch':>6s} {'ORT samples/s':>14s} {'eager samples/s':>16s} {'ratio':>6s} {'paired':>8s} "
                  f"{'ORT % of peak':>14s}")
            def pass_latents(count):
                return np.random.default_rng(0).standard_normal((count, onnx_g.latent_dim), dtype=np.float32)

            for b in sizes:
                def ort_pass():
                    for i in range(0, total, b):
                        onnx_g.session.run(None, {"z": z[i:i + b]})

                def eager_pass():
                    with torch.no_grad():
                        for i in range(0, total, b):
                            torch_g(torch.from_numpy(z[i:i + b]))

                total = max(b * 8, 4096)
                z = pass_latents(total)
                # passes of at least MIN_PASS_SECONDS through ONNX Runtime: 4,096 ring samples took 5 ms, and
                # on this VM so short a pass moved the ratio by 2x between runs
                total = max(total, -(-int(MIN_PASS_SECONDS * total / median_time(ort_pass, 1)[0]) // b) * b)
                z = pass_latents(total)
                times = interleaved_times({"ort": ort_pass, "eager": eager_pass}, runs)
                ort_rate, eager_rate = (total / statistics.median(times[k]) for k in ("ort", "eager"))
                paired = paired_ratio(times["eager"], times["ort"])
                pct = ort_rate * flop / 1e9 / peak["gflops"]
                print(f"{b:6d} {ort_rate:14.0f} {eager_rate:16.0f} {ort_rate / eager_rate:5.2f}x {paired:7.2f}x "
                      f"{pct:14.2%}")
                result["per_batch"].append({"model": name, "batch": b, "samples_per_pass": total, "ort": ort_rate,
                                            "eager": eager_rate, "paired_ratio": paired, "fraction_of_peak": pct,
                                            "all": times})
            path, latent_dim = onnx_g.path, onnx_g.latent_dim
            onnx_g = None  # closes its session, whose threads would spin beside the sessions timed below
            z = latents_for(0, 0, n, latent_dim)

            def bare() -> float:
                """Seconds of session.run over z at batch 256, in a session of its own, opened and closed
                untimed. ONNX Runtime's threads spin for a while after each call: 100k ring samples took
                165 ms right after another session's pass instead of 120 ms after the same session's."""
                session = open_session(path, "cpu")
                t0 = time.perf_counter()
                for i in range(0, n, 256):
                    session.run(None, {"z": z[i:i + 256]})
                return time.perf_counter() - t0

            out = Path(tmp) / "x.npz"
            whole, bare_s = [], []
            generate(path, n, out, overwrite=True, progress=False)  # warm-up
            bare()
            for _ in range(runs):
                t0 = time.perf_counter()
                generate(path, n, out, overwrite=True, progress=False)
                whole.append(time.perf_counter() - t0)
                bare_s.append(bare())
            w, b = statistics.median(whole), statistics.median(bare_s)
            # each generate is timed right before its bare pass: the median of those pairs' ratios is not moved
            # by the VM's speed drifting over the runs, which the ratio of the two medians is
            paired = paired_ratio(whole, bare_s)
            print(f"generate -n {n} -o x.npz: {w:.3f} s, bare ONNX Runtime on the same latents {b:.3f} s: "
                  f"{w / b:.2f}x (median of the {runs} paired ratios: {paired:.2f}x)")
            result["end_to_end"].append({"model": name, "n": n, "generate_s": w, "bare_ort_s": b, "ratio": w / b,
                                         "paired_ratio": paired, "all": {"generate": whole, "bare": bare_s}})
    save_json(args.json, result)


if __name__ == "__main__":
    main()
