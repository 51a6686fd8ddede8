"""Does the training-health verdict flag runs made to fail, and leave the recipes' runs alone?

Trains runs made to fail (a learning rate x50 held constant, R1 off on the
grid, the classic MLP on the ring, five D steps per G step, the classic MLP on
MNIST) and the 2-D recipes over several seeds, each as a user would
(`gantools train`, one thread, nothing else changed), then reads the verdict
in every line of each log.jsonl. A miss is a failing run never flagged; a
false alarm is a recipe run flagged on any line. For the 2-D runs the final
generator is also scored (`gantools score --metrics modes`, 2,500 samples):
whether a run made to fail did fail is a fact to check, not an assumption. Run directories trained
elsewhere (such as bench/quality.py's digits and MNIST runs) can be judged
too, as recipe runs or as failing ones.

    python bench/health.py --seeds 3 --workdir /tmp/health
    python bench/health.py --seeds 0 --recipe-runs /tmp/quality/mnist-s* --failing-runs /tmp/quality/mnist-mlp-s*
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# the classic settings (gantools.recipes.CLASSIC) on the ring, without the ring recipe's R1, mixture and schedule
CLASSIC_RING = (
    "--data ring --lr 2e-4 --beta1 0.5 --beta2 0.999 --lr-schedule constant --r1 0 --mixture 0 --latent-dim 64 "
    "--batch-size 64 --ema 0.999 --steps 4000"
).split()
FAILING = {
    "ring, learning rate x50 held constant": ["--data", "ring", "--lr", "0.05", "--lr-schedule", "constant"],
    "grid, R1 off": ["--data", "grid", "--r1", "0"],
    "ring, the classic MLP GAN": CLASSIC_RING,
    "ring, 5 D steps per G step": ["--data", "ring", "--n-critic", "5"],
    "mnist, the classic MLP GAN (mnist/mlp)": ["--data", "mnist:train", "--model", "mlp"],
    "grid, R1 off and no latent mixture": ["--data", "grid", "--r1", "0", "--mixture", "0"],
    "ring, the classic MLP GAN with 5 D steps per G step": [*CLASSIC_RING, "--n-critic", "5"],
}
RECIPES = {"ring": ["--data", "ring"], "grid": ["--data", "grid"]}
MODES = {"ring": 8, "grid": 25}


def train(args: list, out: Path) -> None:
    if (out / "log.jsonl").exists() and (out / "checkpoints").exists():
        return  # trained by an earlier, interrupted call of this script
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "gantools", "train", *args, "--out", str(out), "-q"],
        env=env,
        check=True,
        capture_output=True,
    )


def outcome(run: Path) -> str:
    """Modes found and high-quality share of a 2-D run's final generator, '-' for images."""
    config = json.loads((run / "config.json").read_text())
    if config["kind"] != "points":
        return "-"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    onnx, got = run.with_suffix(".onnx"), run.with_suffix(".json")
    for args in (
        ["export", str(run), "-o", str(onnx), "--overwrite"],
        ["score", str(onnx), "--real", config["data"], "--metrics", "modes", "--json", str(got), "-q"],
    ):
        done = subprocess.run([sys.executable, "-m", "gantools", *args], env=env, capture_output=True, text=True)
        if done.returncode:  # a generator whose weights blew up fails export's parity check
            return f"not exported: {done.stderr.strip().removeprefix('gantools: error: ')[:60]}"
    r = json.loads(got.read_text())
    return f"{r['modes']}/{MODES[config['data']]} modes, {r['hq_fraction']:.1%} high quality"


def survived(outcome: str) -> bool:
    """Whether a 2-D run's final samples ('m/M modes, q% high quality') found every mode at >= 90% quality."""
    if " modes, " not in outcome:
        return False
    modes, rest = outcome.split(" modes, ")
    found, total = modes.split("/")
    return found == total and float(rest.split("%")[0]) >= 90.0


def judge(run: Path) -> dict:
    """Verdicts of a run on every line (recomputed from the lines up to it, as training computes them, so
    that logs written before the verdict existed are judged too) and at the end."""
    from gantools.checkpoint import read_log, read_run_config
    from gantools.health import diagnose

    rows, config = read_log(run), read_run_config(run)
    verdicts = [diagnose(rows[: i + 1], config.get("loss", "ns"), config.get("steps")) for i in range(len(rows))]
    flagged = [(row, v) for row, v in zip(rows, verdicts, strict=True) if v]
    return {
        "flagged_lines": len(flagged),
        "lines": len(rows),
        "first": flagged[0][0]["step"] if flagged else None,
        "problems": sorted({x.problem for _, v in flagged for x in v}),
        "end": [v.line() for v in verdicts[-1]] if verdicts else [],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds of each 2-D recipe")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--recipe-runs", nargs="*", default=[], help="run directories of recipes, judged too")
    parser.add_argument("--failing-runs", nargs="*", default=[], help="run directories made to fail, judged too")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    root = Path(args.workdir or tempfile.mkdtemp(prefix="gantools-health-"))
    root.mkdir(parents=True, exist_ok=True)
    runs = []  # (name, expected to fail, run directory)
    for i, (name, options) in enumerate(FAILING.items()):
        out = root / f"failing-{i}"
        train(options, out)
        runs.append((name, True, out))
    for name, options in RECIPES.items():
        for seed in range(args.seeds):
            out = root / f"{name}-s{seed}"
            train([*options, "--seed", str(seed)], out)
            runs.append((f"{name} recipe, seed {seed}", False, out))
    runs += [(str(d), False, Path(d)) for d in args.recipe_runs]
    runs += [(str(d), True, Path(d)) for d in args.failing_runs]

    results = [{"run": name, "made_to_fail": fail, "outcome": outcome(out), **judge(out)} for name, fail, out in runs]
    print("| run | made to fail | final samples | flagged lines | first flagged | problems | verdict at the end |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        first = f"{r['first']:,}" if r["first"] is not None else "-"
        end = "; ".join(r["end"]) or "healthy"
        print(
            f"| {r['run']} | {'yes' if r['made_to_fail'] else 'no'} | {r['outcome']} | "
            f"{r['flagged_lines']} of {r['lines']} | "
            f"{first} | {', '.join(r['problems']) or '-'} | {end} |"
        )
    fine = [r for r in results if r["made_to_fail"] and r["outcome"] != "-" and survived(r["outcome"])]
    misses = [r for r in results if r["made_to_fail"] and r not in fine and not r["flagged_lines"]]
    alarms = [r for r in results if not r["made_to_fail"] and r["flagged_lines"]]
    failing = sum(r["made_to_fail"] for r in results)
    print(
        f"\nmisses: {len(misses)} of the {failing - len(fine)} runs made to fail that failed ({len(fine)} more did "
        f"not fail: every mode, >= 90% high quality); false alarms: {len(alarms)} of {len(results) - failing} "
        "recipe runs"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
