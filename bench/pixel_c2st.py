"""What the pixel C2ST sees in a generator's digits: C2STs of the same samples through views that keep
only part of each image, against the held-out digits of DATA:test (mnist or digits).

- pixels: the values, as `gantools score --metrics c2st --extractor raw` sees them;
- shape: the images binarised at 128;
- sorted values: each image's pixel values in increasing order (its grey-level histogram, no shape);
- top levels: per image, how many pixels take each value from 240 to 255;
- level histogram: per image, how many pixels fall in each of 7 bands of grey;
- matched pixels: the generated pixels mapped through a monotone curve that gives them the grey-level
  histogram of DATA:train over all images (a fix of the histogram, not of each image's);
- ceiling: each generated image clipped at a white level drawn from DATA:train's images (each one's most
  common value of 248..255), a plateau where its strokes ramp above it;
- top levels of a real digit: each generated image's pixels of 240 and above (its own or by rank) given,
  rank for rank, the values of a DATA:train digit with about as much ink: the pixels as they would be if
  the generator reproduced each image's white levels and nothing else changed.

    python bench/pixel_c2st.py exported/mnist-dcgan.onnx --json bench/pixel-c2st-mnist.json
    python bench/pixel_c2st.py exported/digits-dcgan.onnx --data digits --json bench/pixel-c2st-digits.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from gantools.data import load_source
from gantools.generate import sample_batch
from gantools.metrics.discriminator import c2st
from gantools.runtime import OnnxGenerator

BANDS = [(0, 1), (1, 32), (32, 96), (96, 160), (160, 224), (224, 255), (255, 256)]


def as_bytes(source) -> np.ndarray:
    """A data source's images as float rows of 0..255."""
    x = source.x if source.x.dtype == np.uint8 else np.rint(source.x * 255.0)
    return x.reshape(len(x), -1).astype(np.float64)


def generated(model: str, n: int, seed: int) -> np.ndarray:
    """n samples as float rows in [-1, 1], before the 8-bit rounding."""
    g = OnnxGenerator(model)
    return np.concatenate([sample_batch(g, seed, i, min(256, n - i))[2] for i in range(0, n, 256)]).reshape(n, -1)


def to_bytes(x: np.ndarray) -> np.ndarray:
    return np.rint(np.clip((x + 1.0) * 127.5, 0.0, 255.0))


def matched(x: np.ndarray, calibration: np.ndarray, target: np.ndarray) -> np.ndarray:
    """x through the monotone map taking calibration's value quantiles to target's."""
    q = np.linspace(0.0, 1.0, 4097)
    source_q, first = np.unique(np.quantile(calibration, q), return_index=True)
    return np.rint(np.interp(x, source_q, np.quantile(target, q)[first]))


def white_levels(train: np.ndarray) -> np.ndarray:
    """Each training image's most common value of 248..255 (255 where it has none)."""
    tops = [r[r >= 248].astype(int) - 248 for r in train]
    return np.array([np.bincount(t).argmax() + 248 if len(t) else 255 for t in tops])


def real_top_levels(fake: np.ndarray, train: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """fake with its brightest pixels' values taken, rank for rank, from a training digit of similar ink."""
    ink = train.sum(1)
    by_ink = np.argsort(ink)
    inks, donors = ink[by_ink], np.sort(train, axis=1)
    out = fake.copy()
    for i, image in enumerate(fake):
        k = np.clip(np.searchsorted(inks, image.sum()) + rng.integers(-10, 11), 0, len(train) - 1)
        ranked = donors[by_ink[k]][np.argsort(np.argsort(image, kind="stable"), kind="stable")]
        top = (ranked >= 240) | (image >= 240)
        out[i, top] = ranked[top]
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="an exported generator of DATA (.onnx)")
    parser.add_argument("--data", choices=["mnist", "digits"], default="mnist")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()

    real, train = as_bytes(load_source(f"{args.data}:test")), as_bytes(load_source(f"{args.data}:train"))
    raw = generated(args.model, len(real), args.seed)
    fake = to_bytes(raw)
    calibration = to_bytes(generated(args.model, 2000, args.seed + 1000)).ravel()
    rng = np.random.default_rng(args.seed)

    def top(x):
        return np.stack([(x == v).sum(1) for v in range(240, 256)], 1)

    def bands(x):
        return np.stack([((x >= a) & (x < b)).sum(1) for a, b in BANDS], 1)

    views = {
        "pixels": (real, fake),
        "shape (binarised at 128)": (real >= 128, fake >= 128),
        "sorted values": (np.sort(real, axis=1), np.sort(fake, axis=1)),
        "top levels (counts of 240..255)": (top(real), top(fake)),
        "level histogram (7 bands)": (bands(real), bands(fake)),
        "matched pixels": (real, matched(fake, calibration, train.ravel())),
        "ceiling": (real, np.minimum(fake, rng.choice(white_levels(train), len(fake))[:, None])),
        "top levels of a real digit": (real, real_top_levels(fake, train, rng)),
    }
    out = {"model": args.model, "data": f"{args.data}:test", "n": len(real), "c2st": {}}
    print(f"{len(real)} generated digits against the {len(real)} of {args.data}:test, 5-fold C2ST:")
    for name, (r, f) in views.items():
        out["c2st"][name] = c2st(r.astype(np.float64), f.astype(np.float64))["c2st_accuracy"]
        print(f"  {name:34s} {out['c2st'][name]:.3f}")
    out["pixels_per_image"] = {
        str(v): [float((real == v).sum(1).mean()), float((fake == v).sum(1).mean())] for v in range(248, 256)
    }
    print("pixels an image at each top value (real, generated):")
    for v, (r, f) in out["pixels_per_image"].items():
        print(f"  {v}: {r:6.2f} {f:6.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
