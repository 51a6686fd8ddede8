"""Training throughput of the recipes, idle and beside one competing CPU-bound process.

For the digits DCGAN (the README's main job) and the 2-D MLP (ring), each
configuration runs in a fresh worker process: `gantools.train.train` for
--short and --long steps, and the rate of the training loop is
(long - short) / (its extra seconds), so start-up and the pictures written at
the end cancel out. FLOPs per step are counted by torch's FlopCounterMode over
a few steps; the fraction of peak is that rate over the machine's fp32 MatMul
peak (measured in the same run; a bf16 workload can pass 100% where bf16 is
native, as its peak is higher). "Loaded" runs `python -c 'while True: pass'`
beside it: one core taken, as on a busy CI runner.

Each configuration runs with the threads as `gantools train` picks them
(gantools/threads.py: libgomp's spinning threads, their count fitted to the
free cores as training starts and every 2 s after), and, for comparison,
always PASSIVE (threads that sleep while waiting), and libgomp's default with
the thread count fixed (OMP_NUM_THREADS set, which gantools leaves alone). The
competing process starts either before training ("from the start") or, in each
of the two timed runs, once training has set itself up and written config.json
("after the start"): then the rate includes the seconds it takes gantools to
notice.

    python bench/train_speed.py --runs 3
    python bench/train_speed.py --only mnist --idle --runs 3   # the MNIST recipe idle, as gantools picks threads
    python bench/train_speed.py --only mnist,mnist-fp32 --idle --runs 3   # ... and in fp32 where it picks bf16

With --against REV, instead: the README's job (the digits DCGAN) of the
commit REV (its `git archive`, first on the worker's PYTHONPATH) against this
tree's, idle, fresh workers alternating, each tree with its own recipe; the
steps/s, GFLOP/step and GFLOP/s of each and the paired ratios.

    python bench/train_speed.py --against 160782b --runs 5
"""

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import bench_parser, cpu_hog, matmul_peak, openmp_env, save_json

# data set, recipe's batch, model, other training options
WORKLOADS = {
    "digits": ("digits", 64, "dcgan", {}),
    "ring": ("ring", 256, "mlp", {}),
    "mnist": ("mnist:train", 64, "dcgan", {}),  # the recipe's --precision auto: bf16 where native
    "mnist-fp32": ("mnist:train", 64, "dcgan", {"precision": "fp32"}),
}
CORES = str(len(os.sched_getaffinity(0)))
REPO = Path(__file__).resolve().parent.parent  # this tree, for --against
# environment of each configuration; OMP_NUM_THREADS set by the user turns gantools' LoadWatch off
POLICIES = {
    "as gantools picks": {},
    "always PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "libgomp default, fixed threads": {"OMP_NUM_THREADS": CORES},
}
LOADS = ("idle", "from the start", "after the start")  # when the competing process starts, if at all


def worker(data: str, model: str, options: dict, short: int, long: int) -> None:
    """Time the two runs, saying "run DIR" as each starts and "end" as it ends (measure starts a hog between)."""
    from torch.utils.flop_counter import FlopCounterMode

    from gantools.train import train

    quiet = {"progress": False, "checkpoint_every": 10**9, "sample_every": 10**9, "log_every": 10**9, **options}
    with tempfile.TemporaryDirectory() as tmp:
        with FlopCounterMode(display=False) as counter:
            train(f"{tmp}/flops", data=data, model=model, steps=8, **quiet)
        seconds = {}
        for steps in (short, long):
            print(f"run {tmp}/run{steps}", flush=True)
            t0 = time.perf_counter()
            train(f"{tmp}/run{steps}", data=data, model=model, steps=steps, **quiet)
            seconds[steps] = time.perf_counter() - t0
            print("end", flush=True)
        start = json.loads(Path(f"{tmp}/run{long}/config.json").read_text()).get("torch_threads")
        lines = Path(f"{tmp}/run{long}/log.jsonl").read_text().splitlines()
        last = json.loads(lines[-1]) if lines else {}  # an older tree (--against) may log neither
    print(
        json.dumps(
            {
                "steps_per_s": (long - short) / (seconds[long] - seconds[short]),
                "policy": os.environ.get("OMP_WAIT_POLICY", "default"),
                "threads": start,
                "threads_at_end": last.get("torch_threads", start),
                "gflop_per_step": counter.get_total_flops() / 8 / 1e9,
            }
        )
    )


def measure(workload: str, policy: dict, load: str, short: int, long: int, tree: str | None = None) -> dict:
    """One fresh worker's result, with `policy`'s environment; `load` is one of LOADS; gantools from `tree`
    (a source folder) instead of this environment's, if given."""
    env = openmp_env(policy)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (tree, env.get("PYTHONPATH"))))
    argv = [sys.executable, __file__, "--worker", workload, "--short", str(short), "--long", str(long)]
    lines = []
    with (
        cpu_hog(load == "from the start"),
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True) as job,
        contextlib.ExitStack() as later,
    ):
        for line in job.stdout:
            lines.append(line)
            if line.startswith("run ") and load == "after the start":
                config = Path(line[4:].strip()) / "config.json"
                while not config.exists() and job.poll() is None:  # training has set itself up
                    time.sleep(0.01)
                later.enter_context(cpu_hog())
            elif line.strip() == "end":
                later.close()
    if job.returncode:
        raise SystemExit(f"worker failed: {' '.join(argv)}")
    return json.loads(lines[-1])


def main():
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", help="internal: measure one workload in this process")
    parser.add_argument("--short", type=int, default=100)
    parser.add_argument("--long", type=int, default=500)
    parser.add_argument("--against", metavar="REV", help="compare the digits job with that of git commit REV")
    parser.add_argument("--only", default=",".join(WORKLOADS), help=f"workloads: {', '.join(WORKLOADS)}")
    parser.add_argument("--idle", action="store_true", help="only idle, with the threads as gantools picks them")
    args = parser.parse_args()
    if args.worker:
        data, _, model, options = WORKLOADS[args.worker]
        return worker(data, model, options, args.short, args.long)
    runs, short, long = (1, 20, 80) if args.quick else (args.runs, args.short, args.long)
    if args.against:
        with archived_tree(args.against) as old:
            peak = matmul_peak(runs=3 if args.quick else 5)
            return save_json(args.json, compare_trees(args.against, old, runs, short, long, peak))
    peak = matmul_peak(runs=3 if args.quick else 5)
    result = {"peak": peak, "runs": runs, "steps": [short, long], "rows": []}
    print(
        f"\n{'workload':8s} {'threads, OpenMP wait':30s} {'idle steps/s':>12s} {'loaded from start':>18s} "
        f"{'loaded after start':>19s} {'samples/s':>10s} {'GFLOP/step':>10s} {'% of peak':>9s}"
    )
    loads = LOADS[:1] if args.idle else LOADS
    policies = dict(list(POLICIES.items())[:1]) if args.idle else POLICIES
    for name in args.only.split(","):
        batch = WORKLOADS[name][1]
        for label, policy in policies.items():
            rates, chosen = {load: [] for load in LOADS}, {load: [] for load in LOADS}
            for _ in range(runs):
                for load in loads:
                    got = measure(name, policy, load, short, long)
                    rates[load].append(got["steps_per_s"])
                    chosen[load].append({k: got[k] for k in ("policy", "threads", "threads_at_end")})
            med = {load: statistics.median(rates[load]) if rates[load] else math.nan for load in LOADS}
            idle = med["idle"]
            slowdown = {load: idle / med[load] for load in LOADS[1:]}
            fraction = idle * got["gflop_per_step"] / peak["gflops"]
            loaded = " ".join(
                f"{med[load]:8.1f} ({slowdown[load]:.2f}x)".rjust(w)
                for load, w in zip(LOADS[1:], (18, 19), strict=True)
            )
            print(
                f"{name:8s} {label:30s} {idle:12.1f} {loaded} {idle * batch:10.0f} "
                f"{got['gflop_per_step']:10.3f} {fraction:9.1%}"
            )
            result["rows"].append(
                {
                    "workload": name,
                    "policy": label,
                    "idle_steps_per_s": idle,
                    "loaded_steps_per_s": med["from the start"],
                    "loaded_later_steps_per_s": med["after the start"],
                    "slowdown": slowdown,
                    "all": rates,
                    "policy_used": chosen,
                    "samples_per_s": idle * batch,
                    "gflop_per_step": got["gflop_per_step"],
                    "fraction_of_peak": fraction,
                    "threads": got["threads"],
                }
            )
    save_json(args.json, result)


@contextlib.contextmanager
def archived_tree(rev: str):
    """A temporary folder holding commit `rev` of this repository (`git archive`)."""
    with tempfile.TemporaryDirectory() as folder:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True)
        if archive.returncode:
            raise SystemExit(f"git archive {rev} failed: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        yield folder


def compare_trees(rev: str, old: str, runs: int, short: int, long: int, peak: dict) -> dict:
    """The digits job of commit `rev` (extracted in `old`) and of this tree, idle, alternating: medians and
    paired ratios."""
    trees = {rev: old, "this tree": str(REPO)}
    got = {name: [] for name in trees}
    for _ in range(runs):
        for name, tree in trees.items():
            got[name].append(measure("digits", {}, "idle", short, long, tree))
    rows = {}
    print(f"\n{'digits job of':14s} {'steps/s':>8s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'% of peak':>9s}")
    for name, results in got.items():
        rate = statistics.median(r["steps_per_s"] for r in results)
        flop = results[-1]["gflop_per_step"]
        rows[name] = {
            "steps_per_s": rate,
            "all": [r["steps_per_s"] for r in results],
            "gflop_per_step": flop,
            "gflops": rate * flop,
            "fraction_of_peak": rate * flop / peak["gflops"],
        }
        print(f"{name:14s} {rate:8.1f} {flop:10.3f} {rate * flop:8.1f} {rate * flop / peak['gflops']:9.1%}")
    ratio = statistics.median(now / then for now, then in zip(rows["this tree"]["all"], rows[rev]["all"], strict=True))
    flops = rows["this tree"]["gflop_per_step"] / rows[rev]["gflop_per_step"]
    print(f"this tree / {rev}, paired median of {runs}: steps/s {ratio:.2f}x, GFLOP/s {ratio * flops:.2f}x")
    return {
        "peak": peak,
        "runs": runs,
        "steps": [short, long],
        "against": rev,
        "trees": rows,
        "paired_steps_ratio": ratio,
        "paired_gflops_ratio": ratio * flops,
    }


if __name__ == "__main__":
    main()
