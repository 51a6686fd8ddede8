"""Generation: ONNX Runtime vs PyTorch eager per batch size, and `generate` end to end vs bare ONNX Runtime.

The generators have the architectures of the shipped models (each recipe
trained for one step, then exported: speed does not depend on the weights).
1. The same generator through ONNX Runtime and PyTorch eager, on the same
   latents, at batch sizes 1 to 1024: samples/s, the ratio, and the fraction
   of the machine's MatMul peak (FLOPs counted by torch's FlopCounterMode).
   ONNX Runtime runs as `generate` runs it (OnnxGenerator.run_batches: for
   batches of at least LANE_MIN_FLOPS of arithmetic, on 2+ cores, one
   single-threaded session per core taking batches in turn); beside it, one
   session with ONNX Runtime's own threads ("one session").
   Each pass runs at least 4,096 samples and MIN_PASS_SECONDS through ONNX
   Runtime; --runs rounds of one pass of each: the medians, their ratio,
   and the median of the rounds' ratios ("paired").
2. `gantools.generate(model, 100000, x.npz)` (seeded latents, inference,
   conversion, the .npz written) against bare inference over the same
   latents at batch 256 (run_batches over latents made beforehand; and one
   session's `session.run` loop when the model runs in lanes), median of
   --runs each, and the median of the paired ratios (each generate and the
   bare passes after it). Each side has the only live ONNX Runtime sessions
   while it runs, as a `gantools generate` process has.
3. `--refine drs` and `--refine mh` of the shipped models (exported/, with
   their discriminators): Refiner.run_batches as `generate` runs it (lanes
   on 2+ cores) against the same jobs refined one after another in the
   main sessions, at batch 256; --runs rounds, the main sessions first.
4. Where lanes start to pay (runtime.LANE_MIN_FLOPS): the shipped ring and
   digits generators at small batch sizes, the main session (ONNX
   Runtime's own threads) against lanes, each mode in a process of its own
   (in one process the main session's idle threads spin beside the lanes),
   --runs alternating rounds of the best of 3 passes: samples/s, their
   ratio and the paired ratio, and which of the two `generate` takes.

    python bench/generate_speed.py --runs 9
"""

import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from timing import bench_parser, interleaved_times, matmul_peak, median_time, paired_ratio, save_json

RECIPES = {"digits-dcgan": "digits", "ring": "ring"}
MIN_PASS_SECONDS = 0.25
ROOT = Path(__file__).resolve().parent.parent
REFINED = {"digits-dcgan": 2048, "ring": 20000}  # samples refined per pass


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


def as_generate_runs_it(g, z, batch: int) -> None:
    """z through g at `batch` as `generate` runs it (run_batches: lanes where they apply)."""
    for _ in g.run_batches((z[i : i + batch], None) for i in range(0, len(z), batch)):
        pass


def through_one_session(session, z, batch: int) -> None:
    """z through one session's bare session.run loop at `batch`."""
    for i in range(0, len(z), batch):
        session.run(None, {"z": z[i : i + batch]})


def refine_rows(runs: int, quick: bool) -> list:
    """Section 3: refinement in lanes (as generate runs it) against one job after another in the main sessions."""
    from gantools.refine import Refiner, find_discriminator
    from gantools.runtime import OnnxGenerator

    rows = []
    print(
        f"\nrefinement at batch 256, seconds per pass (median of {runs}), lanes as generate runs them vs the "
        "main sessions one job after another"
    )
    print(
        f"{'model':>13s} {'method':>6s} {'samples':>8s} {'lanes':>6s} {'lanes s':>8s} {'one session s':>14s} "
        f"{'paired':>7s}"
    )
    for name, n in REFINED.items():
        n = n // 4 if quick else n  # --quick: still two jobs of 256 digits, so lanes run
        path = ROOT / "exported" / f"{name}.onnx"
        g = OnnxGenerator(path, "cpu")
        for method in ("drs", "mh"):
            refiner = Refiner(g, find_discriminator(path), method, seed=0)
            jobs = [(first, min(256, n - first)) for first in range(0, n, 256)]
            lanes = len(refiner.lanes)  # opened untimed

            def in_lanes():
                for _ in refiner.run_batches(jobs):
                    pass

            def one_session():
                for job in jobs:
                    refiner.batch(*job)

            times = interleaved_times({"one_session": one_session, "lanes": in_lanes}, runs)
            med = {k: statistics.median(v) for k, v in times.items()}
            paired = paired_ratio(times["one_session"], times["lanes"])
            print(
                f"{name:>13s} {method:>6s} {n:8d} {lanes:6d} {med['lanes']:8.3f} {med['one_session']:14.3f} "
                f"{paired:6.2f}x"
            )
            rows.append(
                {
                    "model": name,
                    "method": method,
                    "n": n,
                    "lanes": lanes,
                    "lanes_s": med["lanes"],
                    "one_session_s": med["one_session"],
                    "paired_ratio": paired,
                    "all": times,
                }
            )
    return rows


LANE_PROBE = """
import sys, time
import numpy as np
from gantools.runtime import OnnxGenerator, lane_count
from gantools.threads import map_on_lanes
path, batch, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
g = OnnxGenerator(path, "cpu")
lanes = [g.in_lane() for _ in range(lane_count(g))] if mode == "lanes" else None
n = max(batch * 64, int(sys.argv[4]))
z = np.random.default_rng(0).standard_normal((n, g.latent_dim), dtype=np.float32)
batches = [(z[i:i + batch], None) for i in range(0, n, batch)]
def one_pass():
    if lanes:
        for _ in map_on_lanes(lanes, lambda lane, zy: lane(*zy), iter(batches)):
            pass
    else:
        for zb, y in batches:
            g(zb, y)
one_pass()
times = []
for _ in range(3):
    t0 = time.perf_counter()
    one_pass()
    times.append(time.perf_counter() - t0)
print(n / min(times))
"""
LANE_SIZES = {"ring": ((16, 32, 64, 128, 256), 16384), "digits-dcgan": ((1, 2, 4, 8), 2048)}


def lane_threshold_rows(runs: int, quick: bool) -> list:
    """Section 4: the main session vs lanes at small batches, each mode in a process of its own."""
    import subprocess
    import sys

    from gantools.runtime import LANE_MIN_FLOPS, sample_flops

    rows = []
    print(
        f"\nlanes vs the main session, each in a process of its own (median of {runs}); generate takes lanes "
        f"from {LANE_MIN_FLOPS / 1e6:g} MFLOP a batch"
    )
    print(
        f"{'model':>13s} {'batch':>6s} {'MFLOP':>7s} {'main/s':>10s} {'lanes/s':>10s} {'ratio':>6s} {'paired':>7s} "
        f"{'generate':>9s}"
    )
    for name, (sizes, samples) in LANE_SIZES.items():
        path = ROOT / "exported" / f"{name}.onnx"
        flops = sample_flops(path)
        for batch in sizes[::2] if quick else sizes:
            rates = {"main": [], "lanes": []}
            for _ in range(runs):
                for mode, got in rates.items():
                    out = subprocess.run(
                        [sys.executable, "-c", LANE_PROBE, str(path), str(batch), mode, str(samples)],
                        capture_output=True,
                        text=True,
                        check=True,
                        cwd=ROOT,
                    )
                    got.append(float(out.stdout.split()[-1]))
            med = {k: statistics.median(v) for k, v in rates.items()}
            paired = statistics.median(a / b for a, b in zip(rates["lanes"], rates["main"], strict=True))
            takes = "lanes" if batch * flops >= LANE_MIN_FLOPS else "main"
            print(
                f"{name:>13s} {batch:6d} {batch * flops / 1e6:7.1f} {med['main']:10.0f} {med['lanes']:10.0f} "
                f"{med['lanes'] / med['main']:5.2f}x {paired:6.2f}x {takes:>9s}"
            )
            rows.append(
                {
                    "model": name,
                    "batch": batch,
                    "mflop": batch * flops / 1e6,
                    "main": med["main"],
                    "lanes": med["lanes"],
                    "paired_ratio": paired,
                    "generate_takes": takes,
                    "all": rates,
                }
            )
    return rows


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
    from gantools.runtime import LANE_MIN_FLOPS, OnnxGenerator, open_session

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in RECIPES.items():
            onnx_g, torch_g = build(Path(tmp), data)
            with FlopCounterMode(display=False) as counter:
                torch_g(torch.zeros(1, onnx_g.latent_dim))
            flop = counter.get_total_flops()
            print(f"\n{name}: {flop / 1e6:.2f} MFLOP per sample")
            lanes = len(onnx_g.lanes)
            lane_batch = math.ceil(LANE_MIN_FLOPS / onnx_g.sample_flops)
            print(
                f"ONNX Runtime as generate runs it: {lanes} single-threaded lanes for batches of at least "
                f"{lane_batch} ({LANE_MIN_FLOPS / 1e6:g} MFLOP), one session below"
                if lanes
                else "ONNX Runtime as generate runs it: one session"
            )
            print(
                f"{'batch':>6s} {'ORT samples/s':>14s} {'one session':>12s} {'eager samples/s':>16s} {'ratio':>6s} "
                f"{'paired':>8s} {'ORT % of peak':>14s}"
            )

            def pass_latents(count):
                return np.random.default_rng(0).standard_normal((count, onnx_g.latent_dim), dtype=np.float32)

            for b in sizes:

                def ort_pass():
                    as_generate_runs_it(onnx_g, z, b)

                def one_session_pass():
                    through_one_session(onnx_g.session, z, b)

                def eager_pass():
                    with torch.no_grad():
                        for i in range(0, total, b):
                            torch_g(torch.from_numpy(z[i : i + b]))

                total = max(b * 8, 4096)
                z = pass_latents(total)
                # passes of at least MIN_PASS_SECONDS through ONNX Runtime: 4,096 ring samples took 5 ms, and
                # on this VM so short a pass moved the ratio by 2x between runs
                total = max(total, -(-int(MIN_PASS_SECONDS * total / median_time(ort_pass, 1)[0]) // b) * b)
                z = pass_latents(total)
                contenders = {
                    **({"one_session": one_session_pass} if lanes else {}),
                    "ort": ort_pass,
                    "eager": eager_pass,
                }
                times = interleaved_times(contenders, runs)
                rate = {k: total / statistics.median(v) for k, v in times.items()}
                paired = paired_ratio(times["eager"], times["ort"])
                pct = rate["ort"] * flop / 1e9 / peak["gflops"]
                one = f"{rate['one_session']:12.0f}" if lanes else f"{'(same)':>12s}"
                print(
                    f"{b:6d} {rate['ort']:14.0f} {one} {rate['eager']:16.0f} {rate['ort'] / rate['eager']:5.2f}x "
                    f"{paired:7.2f}x {pct:14.2%}"
                )
                result["per_batch"].append(
                    {
                        "model": name,
                        "batch": b,
                        "lanes": lanes,
                        "samples_per_pass": total,
                        "ort": rate["ort"],
                        "one_session": rate.get("one_session"),
                        "eager": rate["eager"],
                        "paired_ratio": paired,
                        "fraction_of_peak": pct,
                        "all": times,
                    }
                )
            path, latent_dim = onnx_g.path, onnx_g.latent_dim
            onnx_g = None  # closes its sessions, whose threads would spin beside the sessions timed below
            z = latents_for(0, 0, n, latent_dim)

            def bare_lanes() -> float:
                """Seconds of inference over z at batch 256 as generate runs it, in sessions of their own,
                opened and closed untimed. ONNX Runtime's threads spin for a while after each call: 100k ring
                samples took 165 ms right after another session's pass instead of 120 ms after the same
                session's."""
                g = OnnxGenerator(path, "cpu")
                _ = g.lanes  # opens the lanes' sessions, untimed
                t0 = time.perf_counter()
                as_generate_runs_it(g, z, 256)
                return time.perf_counter() - t0

            def bare_one_session() -> float:
                """Seconds of one session's session.run loop over z at batch 256 (its own session)."""
                session = open_session(path, "cpu")
                t0 = time.perf_counter()
                through_one_session(session, z, 256)
                return time.perf_counter() - t0

            out = Path(tmp) / "x.npz"
            bares = {"bare": bare_lanes, **({"one_session": bare_one_session} if lanes else {})}
            timed = {"generate": [], **{k: [] for k in bares}}
            generate(path, n, out, overwrite=True, progress=False)  # warm-up
            for fn in bares.values():
                fn()
            for _ in range(runs):
                t0 = time.perf_counter()
                generate(path, n, out, overwrite=True, progress=False)
                timed["generate"].append(time.perf_counter() - t0)
                for k, fn in bares.items():
                    timed[k].append(fn())
            med = {k: statistics.median(v) for k, v in timed.items()}
            # each generate is timed right before its bare passes: the median of those pairs' ratios is not moved
            # by the VM's speed drifting over the runs, which the ratio of the two medians is
            paired = paired_ratio(timed["generate"], timed["bare"])
            print(
                f"generate -n {n} -o x.npz: {med['generate']:.3f} s, bare inference as generate runs it on the "
                f"same latents {med['bare']:.3f} s: {med['generate'] / med['bare']:.2f}x (median of the {runs} "
                f"paired ratios: {paired:.2f}x)"
            )
            entry = {
                "model": name,
                "n": n,
                "lanes": lanes,
                "generate_s": med["generate"],
                "bare_ort_s": med["bare"],
                "ratio": med["generate"] / med["bare"],
                "paired_ratio": paired,
                "all": timed,
            }
            if lanes:
                one_paired = paired_ratio(timed["generate"], timed["one_session"])
                print(
                    f"  one session's session.run loop on the same latents: {med['one_session']:.3f} s "
                    f"(generate / it, paired: {one_paired:.2f}x)"
                )
                entry.update(one_session_s=med["one_session"], one_session_paired_ratio=one_paired)
            result["end_to_end"].append(entry)
    result["refine"] = refine_rows(runs, args.quick)
    result["lane_threshold"] = lane_threshold_rows(runs, args.quick)
    save_json(args.json, result)


if __name__ == "__main__":
    main()
