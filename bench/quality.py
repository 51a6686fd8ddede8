"""Quality of gantools' training recipes over several seeds, beside the published mode-collapse results.

Each recipe is trained as a user would: `gantools train --data DATA --seed S`
with no other option (the conditional models add --conditional, the classic
MNIST baseline --model mlp), then exported and scored with `gantools score`.
The 2-D models are also sampled with `gantools generate --refine drs|mh` and
scored again, as separate rows. Digits and MNIST models train on the `:train`
split and are scored against `:test` (every fourth image, never seen in
training) with a classifier trained on `:train` alone, and the data-copying
test in that classifier's features asks whether the samples sit closer to
`:train` than `:test` does. Each MNIST figure
stands beside the same figure of the real floor: the 3,750 `mnist:train`
digits scored against `mnist:test` as a generator's 3,750 samples are.

Prints PacGAN's Table 1 (Lin et al. 2018) with gantools' rows added: mean
and standard error over seeds, modes as min/mean; then the digits and the
MNIST figures.

    python bench/quality.py --seeds 10 --jobs 2 --workdir runs/quality --json bench/quality.json
    python bench/quality.py --quick            # 2 seeds of each, a smoke run
    python bench/quality.py --only mnist-mlp,mnist,mnist-cond --digits-seeds 4 --jobs 2 --json bench/quality-mnist.json

Each finished run is appended to WORKDIR/results.jsonl; rerunning with the
same --workdir skips the runs already there, so an interrupted benchmark
picks up where it stopped; --rescore scores those runs again instead (after
a change to the scoring), without training them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

PACGAN_TABLE1 = [  # method, ring modes, ring hq, ring rkl, grid modes, grid hq, grid rkl (mean of 10 runs)
    ("GAN", 6.3, 0.982, 0.45, 17.3, 0.948, 0.70),
    ("ALI", 6.6, 0.976, 0.36, 24.1, 0.957, 0.14),
    ("PacGAN4", 7.8, 0.959, 0.07, 24.8, 0.936, 0.04),
]
POINT_RECIPES = {"ring": ["--data", "ring"], "grid": ["--data", "grid"]}
DIGIT_RECIPES = {"digits": ["--data", "digits:train"], "digits-cond": ["--data", "digits:train", "--conditional"]}
MNIST_RECIPES = {
    "mnist-mlp": ["--data", "mnist:train", "--model", "mlp"],
    "mnist": ["--data", "mnist:train"],
    "mnist-cond": ["--data", "mnist:train", "--conditional"],
}
N_MNIST = 3750  # generated digits per MNIST score: as many as mnist:train, the real floor's side
REFINE = ("drs", "mh")
N_DIGITS = 5000  # generated digits per score (C2ST takes as many as the 449 held-out digits)
# One pixel C2ST is the accuracy of 898 cross-validated predictions, about +-0.017 by itself; the mean over this many
# scoring seeds (other generated samples, other folds) resolves recipe differences several times finer
PIXEL_DRAWS = 10


def gantools(*args, env=None) -> None:
    cmd = [sys.executable, "-m", "gantools", *map(str, args)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def score_json(*args, env=None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    try:
        gantools("score", *args, "--json", path, "-q", env=env)
        return json.loads(Path(path).read_text())
    finally:
        os.unlink(path)


def run_one(name: str, seed: int, root: Path, env: dict, classifiers: dict, extra: tuple = ()) -> dict:
    """Train (with `extra` train options, if any), export and score one recipe at one seed; its figures."""
    run, onnx = root / f"{name}-s{seed}", root / f"{name}-s{seed}.onnx"
    recipe = {**POINT_RECIPES, **DIGIT_RECIPES, **MNIST_RECIPES}[name]
    shutil.rmtree(run, ignore_errors=True)  # a run left by an interrupted benchmark
    t0 = time.perf_counter()
    gantools("train", *recipe, *extra, "--seed", seed, "--out", run, "-q", env=env)
    out = {"recipe": name, "seed": seed, "train_seconds": round(time.perf_counter() - t0, 1)}
    if extra:
        out["train_args"] = " ".join(extra)
    gantools("export", run, "-o", onnx, "--overwrite", env=env)
    return {**out, **score_one(name, seed, root, env, classifiers)}


def score_one(name: str, seed: int, root: Path, env: dict, classifiers: dict) -> dict:
    """Score one run's exported generator; its figures (without the training time)."""
    onnx, out = root / f"{name}-s{seed}.onnx", {}
    if name in MNIST_RECIPES:
        return {**score_mnist(onnx, env, classifiers["mnist"]), **copying_figures(name, seed, root, env, classifiers)}
    classifier = classifiers.get("digits")
    if name in POINT_RECIPES:
        keys = ("modes", "hq_fraction", "reverse_kl")
        got = score_json(onnx, "--real", name, "--metrics", "modes", env=env)
        out.update({k: got[k] for k in keys})
        for method in REFINE:
            refined = root / f"{name}-s{seed}-{method}.npz"
            gantools("generate", onnx, "-n", 2500, "-o", refined, "--refine", method, "--overwrite", "-q", env=env)
            got = score_json(refined, "--real", name, "--metrics", "modes", env=env)
            out.update({f"{method}_{k}": got[k] for k in keys})
        return out
    pixels = [
        score_json(
            onnx,
            "-n",
            N_DIGITS,
            "--real",
            "digits:test",
            "--metrics",
            "c2st",
            "--extractor",
            "raw",
            "--seed",
            k,
            env=env,
        )["c2st_accuracy"]
        for k in range(PIXEL_DRAWS)
    ]
    feats = score_json(
        onnx,
        "-n",
        N_DIGITS,
        "--real",
        "digits:test",
        "--metrics",
        "c2st,fid",
        "--extractor",
        "classifier",
        "--classifier",
        classifier,
        env=env,
    )
    classes = score_json(
        onnx, "-n", N_DIGITS, "--real", "digits", "--metrics", "classes", "--classifier", classifier, env=env
    )
    out.update(
        c2st_pixels=pixels[0],
        c2st_pixels_draws=statistics.mean(pixels),
        c2st_features=feats["c2st_accuracy"],
        fid=feats["fid"],
        class_max_dev=classes["class_max_dev"],
    )
    if "class_accuracy" in classes:
        out["class_accuracy"] = classes["class_accuracy"]
    return {**out, **copying_figures(name, seed, root, env, classifiers)}


def copying_figures(name: str, seed: int, root: Path, env: dict, classifiers: dict) -> dict:
    """The data-copying test of a digits or MNIST run, in its domain classifier's features: its generated
    samples and the held-out split against the training split it learnt from."""
    data = "mnist" if name in MNIST_RECIPES else "digits"
    n = N_MNIST if data == "mnist" else N_DIGITS
    got = score_json(
        root / f"{name}-s{seed}.onnx",
        "-n",
        n,
        "--real",
        f"{data}:test",
        "--train",
        f"{data}:train",
        "--metrics",
        "copying",
        "--extractor",
        "classifier",
        "--classifier",
        classifiers[data],
        env=env,
    )
    return {"copying_ct": got["copying_ct"], "copying_share": got["copying_share"]}


def score_mnist(side, env: dict, classifier: Path) -> dict:
    """The MNIST figures of one side (an exported generator, or mnist:train for the real floor) vs mnist:test."""
    n = ["-n", N_MNIST] if str(side).endswith(".onnx") else []
    inception = score_json(side, *n, "--real", "mnist:test", "--metrics", "fid,prdc", env=env)
    feats = score_json(
        side,
        *n,
        "--real",
        "mnist:test",
        "--metrics",
        "fid,c2st",
        "--extractor",
        "classifier",
        "--classifier",
        classifier,
        env=env,
    )
    pixels = score_json(side, *n, "--real", "mnist:test", "--metrics", "c2st", "--extractor", "raw", env=env)
    out = {
        "fid_inception": inception["fid"],
        "precision": inception["precision"],
        "recall": inception["recall"],
        "fid": feats["fid"],
        "c2st_features": feats["c2st_accuracy"],
        "c2st_pixels": pixels["c2st_accuracy"],
    }
    if str(side).endswith(".onnx"):
        classes = score_json(
            side, *n, "--real", "mnist:test", "--metrics", "classes", "--classifier", classifier, env=env
        )
        out.update({k: classes[k] for k in ("class_max_dev", "class_accuracy") if k in classes})
    return out


def classifier_accuracy(classifier: Path, spec: str) -> float:
    """The share of SPEC's labelled images that the exported classifier puts in their class."""
    from gantools.data import load_source
    from gantools.runtime import open_session

    x, y = load_source(spec).take()
    logits = open_session(classifier, "cpu").run(["logits"], {"x": x})[0]
    return float((logits.argmax(axis=1) == y).mean())


def mnist_baseline(root: Path, env: dict) -> tuple[Path, dict]:
    """(classifier trained on mnist:train, the real floor: mnist:train's figures against mnist:test and the
    classifier's accuracy on its own held-out fifth of mnist:train and on mnist:test)."""
    clf = root / "mnist-classifier.onnx"
    if not clf.exists():
        gantools("train-classifier", "--data", "mnist:train", "-o", clf, "-q", env=env)
    floor_file = root / "mnist-floor.json"
    if not floor_file.exists():
        heldout = json.loads(
            subprocess.run(
                [sys.executable, "-m", "gantools", "info", clf, "--json"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            ).stdout
        )
        floor = {
            **score_mnist("mnist:train", env, clf),
            "classifier_heldout": float(heldout["metadata"]["heldout_accuracy"]),
            "classifier_test": classifier_accuracy(clf, "mnist:test"),
        }
        floor_file.write_text(json.dumps(floor, indent=2) + "\n")
    return clf, json.loads(floor_file.read_text())


def digits_baseline(root: Path, env: dict) -> tuple[Path, float, float]:
    """(classifier trained on digits:train, its held-out accuracy, FID between two disjoint halves of the digits)."""
    from gantools.data import load_source

    clf = root / "digits-classifier.onnx"
    if not clf.exists():
        gantools("train-classifier", "--data", "digits:train", "-o", clf, "-q", env=env)
    accuracy = float(
        json.loads(
            subprocess.run(
                [sys.executable, "-m", "gantools", "info", clf, "--json"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            ).stdout
        )["metadata"]["heldout_accuracy"]
    )
    src = load_source("digits")
    for part in (0, 1):
        np.savez(root / f"half{part}.npz", x=src.x[part::2], y=src.y[part::2])
    got = score_json(
        root / "half0.npz",
        "--real",
        root / "half1.npz",
        "--metrics",
        "fid",
        "--extractor",
        "classifier",
        "--classifier",
        clf,
        env=env,
    )
    return clf, accuracy, got["fid"]


def workdir_env(root: Path, jobs: int) -> dict:
    """The environment of a benchmark's gantools commands: one thread each when runs go side by side, and
    the workdir's own cache (the Inception export, cached features)."""
    env = dict(os.environ, OMP_NUM_THREADS="1") if jobs > 1 else dict(os.environ)
    env["GANTOOLS_CACHE"] = str(root / "cache")
    return env


class RunLog:
    """WORKDIR/results.jsonl: each finished run appended as it ends, from any worker thread, and read back
    by a rerun, which then skips the runs already there."""

    def __init__(self, root: Path):
        self.path, self.lock = root / "results.jsonl", threading.Lock()

    def read(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines()] if self.path.exists() else []

    def append(self, got: dict) -> dict:
        with self.lock, self.path.open("a") as f:
            f.write(json.dumps(got) + "\n")
        print(json.dumps(got), file=sys.stderr, flush=True)
        return got


def mean_se(values, percent: bool = False) -> str:
    v = [float(x) for x in values]
    se = statistics.stdev(v) / len(v) ** 0.5 if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.1%} ± {se:.1%}" if percent else f"{statistics.mean(v):.3g} ± {se:.2g}"


def copying_cell(rows) -> str:
    """C_T mean ± SE and its lowest seed (below -3 flags copying), or - for runs scored before the test."""
    if not all("copying_ct" in r for r in rows):
        return "-"
    return f"{mean_se([r['copying_ct'] for r in rows])} (min {min(r['copying_ct'] for r in rows):.2f})"


def modes_cell(values) -> str:
    return f"{min(values)} / {statistics.mean(values):.4g}"


def point_table(results: list[dict], seeds: int) -> str:
    lines = [
        "| method | ring modes (of 8) | ring high-quality | ring reverse KL | grid modes (of 25) | "
        "grid high-quality | grid reverse KL |",
        "|---" * 7 + "|",
    ]
    for name, *row in PACGAN_TABLE1:
        lines.append(
            f"| {name} (PacGAN Table 1) | {row[0]} | {row[1]:.1%} | {row[2]} | {row[3]} | {row[4]:.1%} | {row[5]} |"
        )
    for prefix, label in (("", "gantools"), ("drs_", "gantools + --refine drs"), ("mh_", "gantools + --refine mh")):
        cells = []
        for data in POINT_RECIPES:
            rows = [r for r in results if r["recipe"] == data]
            if not rows:
                cells += ["-"] * 3
                continue
            cells += [
                modes_cell([r[prefix + "modes"] for r in rows]),
                mean_se([r[prefix + "hq_fraction"] for r in rows], percent=True),
                mean_se([r[prefix + "reverse_kl"] for r in rows]),
            ]
        lines.append(f"| {label} ({seeds} seeds) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def digits_table(results: list[dict], baseline_fid: float) -> str:
    lines = [
        f"| model | C2ST pixels | C2ST pixels, mean of {PIXEL_DRAWS} draws | C2ST classifier features | "
        "domain FID (÷ halves) | class max dev | conditional accuracy | copying C_T | train s (median) |",
        "|---" * 9 + "|",
    ]
    for name in DIGIT_RECIPES:
        rows = [r for r in results if r["recipe"] == name]
        if not rows:
            continue
        ratio = mean_se([r["fid"] / baseline_fid for r in rows])
        acc = mean_se([r["class_accuracy"] for r in rows], percent=True) if "class_accuracy" in rows[0] else "-"
        draws = mean_se([r["c2st_pixels_draws"] for r in rows]) if all("c2st_pixels_draws" in r for r in rows) else "-"
        lines.append(
            f"| {name} ({len(rows)} seeds) | {mean_se([r['c2st_pixels'] for r in rows])} | {draws} | "
            f"{mean_se([r['c2st_features'] for r in rows])} | {mean_se([r['fid'] for r in rows])} ({ratio}) | "
            f"{mean_se([r['class_max_dev'] for r in rows], percent=True)} | {acc} | {copying_cell(rows)} | "
            f"{statistics.median(r['train_seconds'] for r in rows):.0f} |"
        )
    return "\n".join(lines)


MNIST_TARGETS = (
    "Inception FID and domain FID ≤ 1.5× the floor's, C2ST ≤ 0.60 (features) and ≤ 0.70 (pixels), "
    "precision and recall ≥ 0.9× the floor's, class max dev ≤ 2 points, conditional accuracy ≥ 98%"
)


def mnist_table(results: list[dict], floor: dict) -> str:
    """Mean ± standard error over seeds, each FID and PRDC figure also as a ratio to the real floor's."""

    def cell(rows, key, ratio=False, percent=False):
        text = mean_se([r[key] for r in rows], percent=percent)
        return f"{text} ({mean_se([r[key] / floor[key] for r in rows])}×)" if ratio else text

    lines = [
        "| model | Inception FID (× floor) | domain FID (× floor) | precision (× floor) | recall (× floor) | "
        "C2ST features | C2ST pixels | class max dev | conditional accuracy | copying C_T | train s (median) |",
        "|---" * 11 + "|",
        f"| real: mnist:train (3,750) | {floor['fid_inception']:.3g} | {floor['fid']:.3g} | "
        f"{floor['precision']:.3f} | {floor['recall']:.3f} | {floor['c2st_features']:.3f} | "
        f"{floor['c2st_pixels']:.3f} | - | - | - | - |",
    ]
    for name in MNIST_RECIPES:
        rows = [r for r in results if r["recipe"] == name]
        if not rows:
            continue
        acc = cell(rows, "class_accuracy", percent=True) if "class_accuracy" in rows[0] else "-"
        lines.append(
            f"| {name} ({len(rows)} seeds) | {cell(rows, 'fid_inception', True)} | "
            f"{cell(rows, 'fid', True)} | {cell(rows, 'precision', True)} | {cell(rows, 'recall', True)} | "
            f"{cell(rows, 'c2st_features')} | {cell(rows, 'c2st_pixels')} | "
            f"{cell(rows, 'class_max_dev', percent=True)} | {acc} | {copying_cell(rows)} | "
            f"{statistics.median(r['train_seconds'] for r in rows):.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--digits-seeds",
        type=int,
        default=None,
        help="seeds of each digits and MNIST recipe (minutes a run) [default: --seeds]",
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds of each recipe: a smoke run")
    parser.add_argument(
        "--only",
        default=",".join([*POINT_RECIPES, *DIGIT_RECIPES]),
        help=f"comma-separated recipes: {', '.join([*POINT_RECIPES, *DIGIT_RECIPES, *MNIST_RECIPES])}; "
        "'mnist' alone means all three MNIST rows",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs side by side, one thread each (1: a single run with the default threads)",
    )
    parser.add_argument("--workdir", default=None, help="keep runs and models here [default: a temporary folder]")
    parser.add_argument("--json", default=None, help="write every run's figures here")
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="score the runs already in --workdir again (after a change to the scoring), keeping "
        "their training times; trains only the runs missing",
    )
    parser.add_argument(
        "--train-args",
        default="",
        help="extra options for every run's `gantools train`, to try a change to the recipes (give a --workdir "
        "of its own: runs already there are not retrained)",
    )
    args = parser.parse_args()
    extra = tuple(args.train_args.split())
    seeds = 2 if args.quick else args.seeds
    digit_seeds = 2 if args.quick else (args.digits_seeds or seeds)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if names == ["mnist"]:
        names = list(MNIST_RECIPES)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="gantools-quality-"))
    root.mkdir(parents=True, exist_ok=True)
    env = workdir_env(root, args.jobs)

    classifiers, clf_accuracy, baseline_fid, floor = {}, None, None, None
    if any(n in DIGIT_RECIPES for n in names):
        classifiers["digits"], clf_accuracy, baseline_fid = digits_baseline(root, env)
    if any(n in MNIST_RECIPES for n in names):
        classifiers["mnist"], floor = mnist_baseline(root, env)
    many = {**DIGIT_RECIPES, **MNIST_RECIPES}
    wanted = {(name, seed) for name in names for seed in range(digit_seeds if name in many else seeds)}
    log = RunLog(root)
    latest = {(r["recipe"], r["seed"]): r for r in log.read()}  # a rescored run's later line replaces its first
    results = [r for key, r in latest.items() if key in wanted]
    jobs = sorted(wanted - {(r["recipe"], r["seed"]) for r in results}, key=lambda j: (j[1], names.index(j[0])))

    # runs scored before the data-copying test get its figures alone (seconds, not a whole rescore)
    lacking = [r for r in results if r["recipe"] in many and "copying_ct" not in r and not args.rescore]

    def add_copying(done_run):
        return log.append({**done_run, **copying_figures(done_run["recipe"], done_run["seed"], root, env, classifiers)})

    def rescore_and_log(done_run):
        return log.append({**done_run, **score_one(done_run["recipe"], done_run["seed"], root, env, classifiers)})

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        if args.rescore:
            results = list(pool.map(rescore_and_log, results))
        elif lacking:
            added = {(r["recipe"], r["seed"]): r for r in pool.map(add_copying, lacking)}
            results = [added.get((r["recipe"], r["seed"]), r) for r in results]
        results += list(pool.map(lambda job: log.append(run_one(*job, root, env, classifiers, extra)), jobs))

    print(
        f"gantools quality benchmark: {seeds} seeds per 2-D recipe, {digit_seeds} per digits or MNIST recipe, "
        f"{args.jobs} run(s) side by side "
        f"({'1 thread each' if args.jobs > 1 else 'default threads'}), {time.perf_counter() - t0:.0f} s in all\n"
    )
    if any(n in POINT_RECIPES for n in names):
        print(point_table(results, seeds))
        for name in POINT_RECIPES:
            secs = [r["train_seconds"] for r in results if r["recipe"] == name]
            if secs:
                print(f"\n{name}: train seconds median {statistics.median(secs):.0f}, max {max(secs):.0f}", end="")
        print("\n")
    if baseline_fid is not None:
        print(
            f"digits: classifier trained on digits:train, held-out accuracy {clf_accuracy:.4f}; "
            f"domain FID between two halves of the digits {baseline_fid:.4g}\n"
        )
        print(digits_table(results, baseline_fid))
    if floor is not None:
        print(
            f"\nMNIST: classifier trained on mnist:train, accuracy {floor['classifier_heldout']:.4f} on its held-out "
            f"fifth and {floor['classifier_test']:.4f} on mnist:test; {N_MNIST} generated digits against the 1,250 "
            f"of mnist:test. Targets: {MNIST_TARGETS}\n"
        )
        print(mnist_table(results, floor))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "seeds": seeds,
                    "jobs": args.jobs,
                    "baseline_fid": baseline_fid,
                    "classifier_accuracy": clf_accuracy,
                    "mnist_floor": floor,
                    "runs": results,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
