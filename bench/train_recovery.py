"""Whole `gantools train` commands that start beside a CPU-bound process which stops a few seconds later.

What libgomp's wait policy cannot do and a thread count can: come back when the load goes. Each run is a
new `gantools train` process, alternately with the threads as gantools picks them (fitted to the free
cores as training starts and every 2 s after: gantools/threads.py) and with OMP_WAIT_POLICY=PASSIVE
(threads that sleep while waiting, read once by libgomp at start), idle and beside
`python -c 'while True: pass'` for its first --hog-seconds. Wall seconds of the whole command, median of
--runs; the thread counts each fitted run used come from its config.json and log.jsonl.

    python bench/train_recovery.py --runs 3
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import bench_parser, cpu_hog, matmul_peak, openmp_env, save_json

WORKLOADS = {"ring": ["--data", "ring", "--steps", "3000"], "digits": ["--data", "digits", "--steps", "600"]}
QUICK = {"ring": ["--data", "ring", "--steps", "600"], "digits": ["--data", "digits", "--steps", "100"]}
POLICIES = {"as gantools picks": openmp_env({}), "always PASSIVE": openmp_env({"OMP_WAIT_POLICY": "PASSIVE"})}


def train_once(args: list, env: dict, hog_seconds: float) -> dict:
    """One `gantools train ARGS` with `env`, beside a CPU hog for its first hog_seconds (0: idle)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        argv = [
            sys.executable,
            "-m",
            "gantools",
            "train",
            *args,
            "--out",
            str(out),
            "-q",
            "--log-every",
            "100",
            "--checkpoint-every",
            "1000000",
            "--sample-every",
            "1000000",
        ]
        with cpu_hog(hog_seconds > 0):
            t0 = time.perf_counter()
            job = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
            try:
                job.wait(timeout=hog_seconds or None)
            except subprocess.TimeoutExpired:
                pass
        if job.wait():
            raise SystemExit(f"training failed: {' '.join(argv)}")
        wall = time.perf_counter() - t0
        rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        start = json.loads((out / "config.json").read_text())["torch_threads"]
    return {"seconds": wall, "threads": [start] + [r["torch_threads"] for r in rows if "torch_threads" in r]}


def main():
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hog-seconds", type=float, default=6.0)
    args = parser.parse_args()
    runs, workloads = (1, QUICK) if args.quick else (args.runs, WORKLOADS)
    peak = matmul_peak(runs=3 if args.quick else 5)
    conditions = {"idle": 0.0, f"hog for the first {args.hog_seconds:g} s": args.hog_seconds}
    result = {"peak": peak, "runs": runs, "hog_seconds": args.hog_seconds, "rows": []}
    print(f"\n{'workload':8s} {'threads':18s} " + " ".join(f"{c:>26s}" for c in conditions) + "  threads used")
    for name, train_args in workloads.items():
        got = {(p, c): [] for p in POLICIES for c in conditions}
        for _ in range(runs):  # alternating, so that the machine's slow spells fall on every cell alike
            for policy, env in POLICIES.items():
                for cond, seconds in conditions.items():
                    got[policy, cond].append(train_once(train_args, env, seconds))
        for policy in POLICIES:
            med = {c: statistics.median(r["seconds"] for r in got[policy, c]) for c in conditions}
            used = sorted({"→".join(map(str, r["threads"])) for c in conditions for r in got[policy, c]})
            cells = " ".join(f"{med[c]:25.1f}s" for c in conditions)
            print(f"{name:8s} {policy:18s} {cells}  {', '.join(used)}")
            result["rows"].append(
                {
                    "workload": name,
                    "args": train_args,
                    "policy": policy,
                    "median_seconds": med,
                    "all": {c: got[policy, c] for c in conditions},
                }
            )
    save_json(args.json, result)


if __name__ == "__main__":
    main()
