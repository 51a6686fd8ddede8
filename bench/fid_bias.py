"""FID's bias by sample size on MNIST, and each generator's FID brought to other sample sizes.

An FID estimated from n1 and n2 samples is biased upwards, by about b/n1 + c/n2 (Chong and Forsyth, 2020:
"Effectively unbiased FID"). Real MNIST against itself measures that bias: the 5,000 bundled digits are
pooled and split at random into disjoint pairs of sizes (n1, n2), whose true FID is 0, and
FID(n1, n2) = a + b/n1 + c/n2 is fitted by least squares (sizes of 1,250 and more: below that the 2,048-d
covariances are far from full rank and the law bends). For a generator, FID against the 1,250 of
`mnist:test` at several generated counts gives its own b and its value at n1 = infinity; the reference
side's term c/1250 then comes off with the real digits' c, which gives the generator's FID at any sizes,
for instance the 10,000 against 10,000 of Lucic et al. (2018), whose best MNIST FIDs are 6.7-6.8.

    python bench/fid_bias.py exported/mnist-dcgan.onnx exported/mnist-cdcgan.onnx --json bench/fid-bias-mnist.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from gantools.metrics.extract import extract_side
from gantools.metrics.features import make_extractor
from gantools.metrics.fid import frechet_distance
from gantools.metrics.sides import open_samples

REAL_PAIRS = [(3750, 1250), (2500, 1250), (1250, 1250), (3000, 2000), (2500, 2500), (2000, 2000), (1500, 3500)]
GENERATED_COUNTS = [1250, 2500, 3750, 5000]
LUCIC = 10_000  # samples per side of Lucic et al.'s FIDs


def inception_features(spec: str, n: int | None = None) -> np.ndarray:
    """pytorch-fid's pool3 features (fp32 Inception) of every sample of a side; a data set's from the cache."""
    samples = open_samples(spec, n=n, seed=1)
    extractor = make_extractor("inception", kind="image")
    out = extract_side(
        samples,
        extractor,
        stats=False,
        features=True,
        logits=False,
        raw=False,
        batch_size=50,
        progress=True,
        cache=True,
    )
    return np.concatenate(out.features).astype(np.float64)


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """FID of two feature sets, the rows given as `score` gives them (the n x n form where n < 2,048)."""
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False), rows1=a, rows2=b)


def fit(sizes: list[tuple[float, ...]], values: list[float]) -> np.ndarray:
    """Least-squares coefficients of value = a + sum_i k_i / size_i."""
    design = np.array([[1.0] + [1.0 / n for n in row] for row in sizes])
    return np.linalg.lstsq(design, np.array(values), rcond=None)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="exported MNIST generators (.onnx)")
    parser.add_argument("--draws", type=int, default=3, help="random subsets averaged at each size")
    parser.add_argument(
        "--counts",
        type=lambda text: [int(n) for n in text.split(",")],
        default=GENERATED_COUNTS,
        help=f"generated counts to fit each model's bias on [default: {','.join(map(str, GENERATED_COUNTS))}]",
    )
    parser.add_argument("--json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    train, test = (inception_features(f"mnist:{part}") for part in ("train", "test"))
    floor = fid(train, test)
    pooled = np.concatenate([train, test])
    real_rows = []
    for n1, n2 in REAL_PAIRS:
        draws = [rng.permutation(len(pooled)) for _ in range(args.draws)]
        real_rows.append((n1, n2, float(np.mean([fid(pooled[p[:n1]], pooled[p[n1 : n1 + n2]]) for p in draws]))))
        print(f"real against real, {n1} / {n2}: FID {real_rows[-1][2]:.3f}", flush=True)
    a, b, c = fit([r[:2] for r in real_rows], [r[2] for r in real_rows])
    print(f"real: FID = {a:.3f} + {b:.0f}/n1 + {c:.0f}/n2; {LUCIC:,} against {LUCIC:,}: {a + (b + c) / LUCIC:.2f}")

    out = {
        "floor": floor,
        "real_pairs": real_rows,
        "real_fit": {"a": a, "b": b, "c": c},
        f"real_{LUCIC}_{LUCIC}": a + (b + c) / LUCIC,
        "models": {},
    }
    for model in args.models:
        generated = inception_features(model, n=max(args.counts))
        rows = []
        for n in args.counts:
            draws = [
                rng.choice(len(generated), n, replace=False) for _ in range(args.draws if n < len(generated) else 1)
            ]
            rows.append((n, float(np.mean([fid(generated[d], test) for d in draws]))))
        infinite, b_model = fit([(n,) for n, _ in rows], [v for _, v in rows])
        unbiased = infinite - c / len(test)
        as_ours = unbiased + b_model / len(train) + c / len(test)  # generated as many as mnist:train holds
        as_lucic = unbiased + (b_model + c) / LUCIC
        out["models"][model] = {
            "fid_by_generated_count": rows,
            "b": b_model,
            "fid_infinite_generated": infinite,
            "fid_unbiased": unbiased,
            "fid_3750_1250": as_ours,
            f"fid_{LUCIC}_{LUCIC}": as_lucic,
            "shift_to_lucic": as_ours - as_lucic,  # what comes off this model's FIDs at our sizes
        }
        print(
            f"{model}: FID against mnist:test by count {', '.join(f'{n}: {v:.2f}' for n, v in rows)}; "
            f"unbiased {unbiased:.2f}; at 3,750 / 1,250 {as_ours:.2f}; at {LUCIC:,} / {LUCIC:,} {as_lucic:.2f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
