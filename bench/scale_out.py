"""Speed-up of `torchrun --nproc-per-node 2` over one process, for the real commands end to end.

Each job runs as a user would type it (process start, torch/ORT import and
rendezvous included), one process and two alternately, after a warm-up of
each; the median wall time of several runs and the ratio are printed. On a
2-core machine one process already uses both cores (ONNX Runtime's thread
pool, PNG encoding threads), so the ratio shows what a second process adds
there; on a machine with a GPU per process it is the scale-out of the job.

    python bench/scale_out.py --workdir /tmp/scale --runs 5
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def jobs(model: str, n_npz: int, n_png: int, n_score: int) -> dict:
    return {
        f"generate -n {n_npz} -o x.npz": ["generate", model, "-n", str(n_npz), "-o", "{out}.npz", "-q", "--overwrite"],
        f"generate -n {n_png} -o pngs/": ["generate", model, "-n", str(n_png), "-o", "{out}", "-q", "--overwrite"],
        f"score -n {n_score} --metrics fid,kid (Inception)": [
            "score",
            model,
            "--real",
            "digits:test",
            "-n",
            str(n_score),
            "--metrics",
            "fid,kid",
            "-q",
            "--no-cache",
        ],
    }


def run(args: list[str], procs: int, workdir: Path, tag: str) -> float:
    out = workdir / f"{tag}-{procs}"
    shutil.rmtree(out, ignore_errors=True)
    argv = [a.replace("{out}", str(out)) for a in args]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]
    launcher = [sys.executable, "-m", "gantools"] if procs == 1 else [*torchrun, "-m", "gantools"]
    t0 = time.perf_counter()
    subprocess.run(launcher + argv, cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "exported" / "digits-dcgan.onnx"))
    parser.add_argument("--workdir", default="/tmp/gantools-scale-out")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n-npz", type=int, default=200_000)
    parser.add_argument("--n-png", type=int, default=20_000)
    parser.add_argument("--n-score", type=int, default=300)
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for i, (name, argv) in enumerate(jobs(args.model, args.n_npz, args.n_png, args.n_score).items()):
        for procs in (1, 2):
            run(argv, procs, workdir, f"job{i}")  # warm-up: the Inception export, file caches
        times = {1: [], 2: []}
        for _ in range(args.runs):
            for procs in (1, 2):
                times[procs].append(run(argv, procs, workdir, f"job{i}"))
        med = {p: statistics.median(t) for p, t in times.items()}
        print(
            f"{name:46s} 1 process {med[1]:7.2f} s   2 processes {med[2]:7.2f} s   speed-up {med[1] / med[2]:.2f}x"
            f"   (runs: {', '.join(f'{t:.1f}' for t in times[1])} | {', '.join(f'{t:.1f}' for t in times[2])})",
            flush=True,
        )


if __name__ == "__main__":
    main()
