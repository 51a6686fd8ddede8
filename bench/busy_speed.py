"""Whole `gantools score` and `generate` commands on an idle machine and beside one competing CPU-bound process.

Issue 9 asks that scoring (as training, `train_speed.py`) stay within 2.5x of its idle speed when one other
CPU-bound process shares the machine, as on a busy CI runner. Each command runs as a new process, as a CI step
runs it, alternately idle and beside `python -c 'while True: pass'` (started before the command); the slowdown
is the median loaded time over the median idle time. The commands use the shipped models in exported/ and the
built-in data; the digits' real features are cached once, untimed, as a CI gate keeps them, in a cache folder
of this run's own.

    python bench/busy_speed.py --runs 3
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from timing import bench_parser, cpu_hog, matmul_peak, save_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET = 2.5  # issue 9: within 2.5x of idle beside one competing process


def commands(tmp: Path, quick: bool) -> dict:
    """name -> argv of the commands timed."""
    gantools = str(Path(sys.executable).with_name("gantools"))
    models = ROOT / "exported"
    n_images, n_digits, n_ring = (64, 5000, 20000) if quick else (256, 50000, 100000)
    n_real = ["--n-real", "128"] if quick else []  # all 1,797 otherwise
    return {
        f"score digits-dcgan -n {n_images} (Inception; fid,kid,prdc,c2st,disc)": [
            gantools,
            "score",
            str(models / "digits-dcgan.onnx"),
            "-n",
            str(n_images),
            "--real",
            "digits",
            *n_real,
            "--metrics",
            "fid,kid,prdc,c2st,disc",
            "-q",
        ],
        "score ring (fid,kid,prdc,modes,disc,c2st)": [
            gantools,
            "score",
            str(models / "ring.onnx"),
            "--real",
            "ring",
            "--metrics",
            "fid,kid,prdc,modes,disc,c2st",
            "-q",
        ],
        f"generate digits-dcgan -n {n_digits} -o x.npz": [
            gantools,
            "generate",
            str(models / "digits-dcgan.onnx"),
            "-n",
            str(n_digits),
            "-o",
            str(tmp / "d.npz"),
            "--overwrite",
            "-q",
        ],
        f"generate ring -n {n_ring} -o x.npz": [
            gantools,
            "generate",
            str(models / "ring.onnx"),
            "-n",
            str(n_ring),
            "-o",
            str(tmp / "r.npz"),
            "--overwrite",
            "-q",
        ],
    }


def timed(argv: list, env: dict, loaded: bool) -> float:
    with cpu_hog(loaded):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    peak = matmul_peak(runs=3 if args.quick else 5)
    result = {"peak": peak, "runs": runs, "target": TARGET, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GANTOOLS_CACHE": str(Path(tmp) / "cache")}
        print(f"\n{'command':62s} {'idle s':>7s} {'loaded s':>9s} {'slowdown':>9s}")
        for name, argv in commands(Path(tmp), args.quick).items():
            timed(argv, env, False)  # warm-up: file cache, the Inception export, the real digits' features
            seconds = {False: [], True: []}
            for _ in range(runs):
                for loaded in (False, True):
                    seconds[loaded].append(timed(argv, env, loaded))
            idle, busy = statistics.median(seconds[False]), statistics.median(seconds[True])
            verdict = "" if busy / idle <= TARGET else "  over 2.5x"
            print(f"{name:62s} {idle:7.2f} {busy:9.2f} {busy / idle:8.2f}x{verdict}")
            result["rows"].append(
                {
                    "command": name,
                    "argv": argv[1:],
                    "idle_s": idle,
                    "loaded_s": busy,
                    "slowdown": busy / idle,
                    "all": {"idle": seconds[False], "loaded": seconds[True]},
                }
            )
    save_json(args.json, result)


if __name__ == "__main__":
    main()
