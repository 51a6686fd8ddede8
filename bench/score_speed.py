"""End-to-end FID of two image folders: `gantools score` vs pytorch-fid and torchmetrics, same folders, same run.

Each contender is timed as a user runs it, a whole command from start to
printed FID (interpreter start, model load, image decoding, extraction,
Fréchet distance), median of --runs interleaved rounds after one warm-up
round; the peers' ratios also as the median of the rounds' ratios (paired).
gantools is timed three ways: both folders extracted (--no-cache), the real
folder's features cached by an earlier run, and against reference statistics
made once by `gantools stats`; on a CPU that computes bf16, also with
--precision bf16 (nothing cached). The peers run from another Python
environment (see bench/peers.md); both FIDs are printed beside ours.

The fp32 limit, printed in the same run: the extractor's arithmetic
(11.42 GFLOP per image, counted by torch's FlopCounterMode) over the
machine's measured MatMul peak.

    python bench/score_speed.py DIR_A DIR_B --peers-python /work/peers-venv/bin/python \\
        --torch-home /work/scratch/peers/torch --runs 5
"""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import INCEPTION_GFLOP, bench_parser, matmul_peak, paired_ratio, save_json

from gantools.metrics.features import cpu_has_bf16

TORCHMETRICS = r"""
import sys, numpy as np, torch
from pathlib import Path
from PIL import Image
from torchmetrics.image.fid import FrechetInceptionDistance
fid = FrechetInceptionDistance(feature=2048)
for real, folder in ((True, sys.argv[2]), (False, sys.argv[1])):
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    for i in range(0, len(files), 50):
        x = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files[i:i + 50]])
        fid.update(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), real=real)
print("FID:", float(fid.compute()))
"""


def images_in(folder) -> int:
    return sum(1 for p in Path(folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def run(cmd, env) -> tuple[float, float]:
    """(seconds, FID) of one whole command."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{done.stderr[-1500:]}")
    if "--json" in cmd:  # gantools: the full-precision value from its JSON
        return seconds, json.loads(Path(cmd[cmd.index("--json") + 1]).read_text())["fid"]
    return seconds, float(re.search(r"FID:\s*([-0-9.e+]+)", done.stdout).group(1))


def main():
    parser = bench_parser(__doc__)
    parser.add_argument("fake", help="folder of generated images")
    parser.add_argument("real", help="folder of real images")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peers-python", help="a Python with pytorch-fid and torchmetrics (bench/peers.md)")
    parser.add_argument("--torch-home", help="TORCH_HOME holding the peers' Inception weights (peer_weights.py)")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs

    peak = matmul_peak(runs=3 if args.quick else 5)
    n_fake, n_real = images_in(args.fake), images_in(args.real)
    work = tempfile.mkdtemp(prefix="gantools-bench-")
    env = {**os.environ, "GANTOOLS_CACHE": str(Path(work) / "cache")}
    ref = Path(work) / "ref.npz"
    gantools = [sys.executable, "-m", "gantools"]
    subprocess.run([*gantools, "stats", args.real, "-o", ref, "-q"], env=env, check=True)
    score = [*gantools, "score", args.fake, "--metrics", "fid", "-q", "--json", Path(work) / "score.json"]
    cache = Path(work) / "cache" / "features"

    def real_cached_only():  # the fake folder must miss the cache, as new samples do: keep the real side's only
        for path in cache.glob("*.npy"):
            path.unlink()
        subprocess.run([*gantools, "stats", args.real, "-o", Path(work) / "fill.npz", "-q"], env=env, check=True)

    contenders = {  # name: (command, images it extracts, untimed preparation before each run)
        "gantools": ([*score, "--real", args.real, "--no-cache"], n_fake + n_real, None),
        "gantools, real cached": ([*score, "--real", args.real], n_fake, real_cached_only),
        "gantools, reference stats": ([*score, "--real", ref, "--no-cache"], n_fake, None),
    }
    if cpu_has_bf16():  # the opt-in reduced precision, nothing cached: its speed and its FID beside fp32's
        contenders["gantools --precision bf16"] = (
            [*score, "--real", args.real, "--no-cache", "--precision", "bf16"],
            n_fake + n_real,
            None,
        )
    if args.peers_python:
        peer_env = {**env, **({"TORCH_HOME": args.torch_home} if args.torch_home else {})}
        contenders["pytorch-fid"] = (
            [args.peers_python, "-m", "pytorch_fid", args.fake, args.real, "--device", "cpu"],
            n_fake + n_real,
            None,
        )
        contenders["torchmetrics"] = (
            [args.peers_python, "-c", TORCHMETRICS, args.fake, args.real],
            n_fake + n_real,
            None,
        )
    times = {name: [] for name in contenders}
    fids = {}
    for _ in range(runs + 1):  # the first round warms up (the Inception export, file caches) and is not timed
        for name, (cmd, _, prepare) in contenders.items():
            if prepare:
                prepare()
            seconds, fids[name] = run(cmd, peer_env if name in ("pytorch-fid", "torchmetrics") else env)
            times[name].append(seconds)
    times = {name: values[1:] for name, values in times.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{n_fake} vs {n_real} images, median of {runs} runs, whole commands (wall seconds)")
    print(f"{'contender':28s} {'seconds':>8s} {'FID':>12s} {'fp32 limit s':>13s} {'x limit':>8s}")
    result = {"n_fake": n_fake, "n_real": n_real, "runs": runs, "peak": peak, "contenders": {}}
    for name, (_, images, _) in contenders.items():
        limit = images * INCEPTION_GFLOP / peak["gflops"]
        print(f"{name:28s} {med[name]:8.1f} {fids[name]:12.6f} {limit:13.1f} {med[name] / limit:8.2f}")
        result["contenders"][name] = {
            "seconds": med[name],
            "all": times[name],
            "fid": fids[name],
            "images_extracted": images,
            "limit_s": limit,
        }
    for peer in ("pytorch-fid", "torchmetrics"):
        if peer in med:
            ours = [name for name in contenders if name.startswith("gantools")]
            paired = {name: paired_ratio(times[peer], times[name]) for name in ours}
            result["contenders"][peer]["paired_ratios"] = paired
            ratios = ", ".join(f"{name} {med[peer] / med[name]:.2f}x (paired {paired[name]:.2f}x)" for name in paired)
            print(
                f"{peer} / gantools: {ratios}; FID relative difference "
                f"{abs(fids['gantools'] - fids[peer]) / abs(fids[peer]):.2e}"
            )
    save_json(args.json, result)


if __name__ == "__main__":
    main()
