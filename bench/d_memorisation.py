"""How much a discriminator has memorised its training images: the AUC of its logits on the training images
against the held-out ones (0.5: it cannot tell them apart; 1: it knows every training image), the overfitting
signal that ADA (Karras et al. 2020) watches.

    python bench/d_memorisation.py exported/mnist-dcgan.disc.onnx exported/mnist-cdcgan.disc.onnx
"""

from __future__ import annotations

import argparse

import numpy as np

from gantools.data import images_to_unit, load_source
from gantools.metrics.discriminator import roc_auc
from gantools.runtime import OnnxDiscriminator


def logits(disc: OnnxDiscriminator, source) -> np.ndarray:
    """D's logits on every image of a source (with its labels, for a conditional D), fed as score feeds it."""
    y = source.y.astype(np.int64) if disc.num_classes else None
    return np.ravel(disc(images_to_unit(source.x) * 2.0 - 1.0, y))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("discriminators", nargs="+", help="exported discriminators (NAME.disc.onnx)")
    parser.add_argument("--data", default="mnist", help="a built-in data set with :train and :test")
    args = parser.parse_args()
    train, test = load_source(f"{args.data}:train"), load_source(f"{args.data}:test")
    for path in args.discriminators:
        disc = OnnxDiscriminator(path)
        auc = roc_auc(logits(disc, train), logits(disc, test))
        print(f"{path}: AUC of D on {args.data}:train against {args.data}:test {auc:.3f}")


if __name__ == "__main__":
    main()
