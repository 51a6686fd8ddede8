"""The digits recipe trained as long as the job issue 9 started from, against that job: quality and time.

Issue 9's target 5b asks the README's job to run 2x faster "with no loss of sample quality". The job
of then (commit 160782b: a classic DCGAN, `gantools train --data digits --model dcgan --steps 3000`)
and the digits recipe of this tree cut to --steps train on the same 1,348 digits (`digits:train`; the
old tree, which has no split, reads them as an .npz), one thread each, --jobs side by side, and this
tree scores every model as bench/quality.py scores the recipes (449 held-out digits). Train seconds
are of runs side by side; `python bench/train_speed.py --against 160782b` times the steps idle.

    python bench/time_to_quality.py --steps 1000,2000,3000 --seeds 4 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import quality
from timing import matmul_peak
from train_speed import archived_tree

FIGURES = ("c2st_pixels", "c2st_pixels_draws", "c2st_features", "fid", "class_max_dev")


def train_export_score(job: tuple, root: Path, envs: dict, data: dict, classifier: Path) -> dict:
    """Train one job's run (label 'old' or 'recipe'), export it with its own tree, score it with this tree."""
    label, steps, seed = job
    name = f"{label}{steps}"
    run, onnx = root / f"{name}-s{seed}", root / f"{name}-s{seed}.onnx"
    shutil.rmtree(run, ignore_errors=True)  # a run left by an interrupted benchmark
    for stale in (onnx, onnx.with_suffix(".disc.onnx")):
        stale.unlink(missing_ok=True)  # the old tree's export has no --overwrite
    t0 = time.perf_counter()
    quality.gantools("train", *data[label], "--steps", steps, "--seed", seed, "--out", run, "-q", env=envs[label])
    secs = round(time.perf_counter() - t0, 1)
    quality.gantools("export", run, "-o", onnx, env=envs[label])
    return {
        "job": label,
        "steps": steps,
        "seed": seed,
        "train_seconds": secs,
        **quality.score_one(name, seed, root, envs["recipe"], classifier),
    }


def summary(results: list[dict], old_steps: int, baseline_fid: float) -> str:
    """Each job's figures (mean ± SE over seeds) and, per recipe length, its seed-by-seed differences from
    the old job."""
    groups: dict = {}
    for r in results:
        groups.setdefault((r["job"], r["steps"]), {})[r["seed"]] = r
    lines = [
        "| job | steps | C2ST pixels | mean of 10 draws | C2ST features | domain FID (÷ halves) | "
        "class max dev | train s (median) |",
        "|---" * 8 + "|",
    ]
    for (label, steps), runs in sorted(groups.items(), key=lambda g: (g[0][0] != "old", g[0][1])):
        rows = list(runs.values())
        cells = [quality.mean_se([r[k] for r in rows]) for k in FIGURES[:3]]
        fids = [r["fid"] for r in rows]
        fid = f"{quality.mean_se(fids)} ({quality.mean_se([f / baseline_fid for f in fids])})"
        lines.append(
            f"| {label} | {steps} | " + " | ".join(cells) + f" | {fid} | "
            f"{quality.mean_se([r['class_max_dev'] for r in rows], percent=True)} | "
            f"{statistics.median(r['train_seconds'] for r in rows):.0f} |"
        )
    old = groups.get(("old", old_steps), {})
    for (label, steps), runs in sorted(groups.items()):
        seeds = sorted(set(runs) & set(old))
        if label == "old" or not seeds:
            continue
        lines.append(f"\nrecipe at {steps} steps minus the old job, by seed ({len(seeds)} seeds; seeds better):")
        for k in FIGURES:
            diffs = [runs[s][k] - old[s][k] for s in seeds]
            lines.append(f"  {k:18s} {quality.mean_se(diffs)}  ({sum(d < 0 for d in diffs)} of {len(seeds)})")
        ratio = statistics.median(old[s]["train_seconds"] / runs[s]["train_seconds"] for s in seeds)
        lines.append(f"  train seconds      old ÷ recipe, median by seed {ratio:.2f}x")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="REV", default="160782b", help="the commit of the old job")
    parser.add_argument("--old-steps", type=int, default=3000, help="the old job's steps")
    parser.add_argument("--steps", default="3000", help="comma-separated lengths of the recipe's runs")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each")
    parser.add_argument("--workdir", default=None, help="keep runs and models here [default: a temporary folder]")
    parser.add_argument("--json", default=None, help="write every run's figures here")
    parser.add_argument("--quick", action="store_true", help="1 seed, 200 steps: a smoke run, not a result")
    args = parser.parse_args()
    try:
        lengths = [int(s) for s in args.steps.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--steps: comma-separated step counts, got {args.steps!r}")
    seeds, old_steps = (1, 200) if args.quick else (args.seeds, args.old_steps)
    lengths = [200] if args.quick else lengths
    root = Path(args.workdir or tempfile.mkdtemp(prefix="gantools-ttq-"))
    root.mkdir(parents=True, exist_ok=True)
    env = quality.workdir_env(root, args.jobs)
    peak = matmul_peak(runs=3)
    classifier, clf_accuracy, baseline_fid = quality.digits_baseline(root, env)

    from gantools.data import load_source

    split = load_source("digits:train")
    np.savez(root / "digits-train.npz", x=split.x, y=split.y)  # the old tree's reading of the same digits
    data = {"old": ["--data", root / "digits-train.npz", "--model", "dcgan"], "recipe": ["--data", "digits:train"]}
    log = quality.RunLog(root)
    # seed by seed, so that the runs compared share the machine's speed of the moment (it drifts over an hour)
    wanted = [job for s in range(seeds) for job in [("old", old_steps, s)] + [("recipe", n, s) for n in lengths]]
    results = [r for r in log.read() if (r["job"], r["steps"], r["seed"]) in wanted]
    finished = {(r["job"], r["steps"], r["seed"]) for r in results}
    todo = [j for j in wanted if j not in finished]

    with archived_tree(args.against) as old_tree, ThreadPoolExecutor(max_workers=args.jobs) as pool:
        envs = {"old": dict(env, PYTHONPATH=old_tree), "recipe": env}
        results += list(pool.map(lambda job: log.append(train_export_score(job, root, envs, data, classifier)), todo))

    print(
        f"\nMatMul peak {peak['gflops']:.1f} GFLOP/s; digits classifier held-out accuracy {clf_accuracy:.4f}; "
        f"domain FID between two halves of the digits {baseline_fid:.4g}; the old job: {args.against}, "
        f"{old_steps} steps; {args.jobs} run(s) side by side\n"
    )
    print(summary(results, old_steps, baseline_fid))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "against": args.against,
                    "old_steps": old_steps,
                    "jobs": args.jobs,
                    "peak": peak,
                    "baseline_fid": baseline_fid,
                    "classifier_accuracy": clf_accuracy,
                    "runs": results,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
