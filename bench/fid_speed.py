"""Fréchet distance on d-dimensional statistics: gantools' frechet_distance vs scipy's sqrtm (pytorch-fid's way).

Both get the same two covariances (of features with n samples each, like
Inception's 2,048-d pool3 over 10,000 images) in the same process; the
figure that matters is the ratio of their speeds (median of several runs)
and that the two values agree. With --n below --dim, gantools also gets the
feature rows and solves the n x n problem.

    python bench/fid_speed.py --dim 2048 --n 10000 --runs 5
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from timing import bench_parser, compare, matmul_peak, save_json

from gantools.metrics.fid import frechet_distance


def sqrtm_fid(mu1, s1, mu2, s2) -> float:
    """pytorch-fid's calculate_frechet_distance, without its retry on a singular product."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def main():
    parser = bench_parser(__doc__)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--n", type=int, default=10000, help="samples behind each covariance")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    dim, n, runs = (512, 2000, 2) if args.quick else (args.dim, args.n, args.runs)

    peak = matmul_peak(runs=3 if args.quick else 5)
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((dim, dim)) / dim**0.5  # correlated features, as real ones are
    f1 = rng.standard_normal((n, dim)) @ mix
    f2 = rng.standard_normal((n, dim)) @ mix * 1.1 + 0.05
    mu1, s1, mu2, s2 = f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)
    rows = {"rows1": f1, "rows2": f2} if n < dim else {}
    ours, theirs = frechet_distance(mu1, s1, mu2, s2, **rows), sqrtm_fid(mu1, s1, mu2, s2)
    difference = abs(ours - theirs) / abs(theirs)
    print(f"d={dim}, n={n}: gantools {ours:.10g}, sqrtm {theirs:.10g}, relative difference {difference:.2e}")
    med, paired = compare(
        {"gantools": lambda: frechet_distance(mu1, s1, mu2, s2, **rows), "sqrtm": lambda: sqrtm_fid(mu1, s1, mu2, s2)},
        1,
        runs,
        "FID",
    )
    save_json(
        args.json,
        {
            "peak": peak,
            "dim": dim,
            "n": n,
            "runs": runs,
            "fid_per_s": med,
            "ratio": med["gantools"] / med["sqrtm"],
            "paired_ratio": paired,
            "relative_difference": difference,
        },
    )


if __name__ == "__main__":
    main()
