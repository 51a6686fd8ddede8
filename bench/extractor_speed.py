"""Inception feature extraction: gantools' ONNX Runtime path vs PyTorch eager (pytorch-fid's way).

Both run the same network on the same images in the same process; the
figure that matters is the ratio of their throughputs, the median of
several runs (timings on shared machines are noisy).

    python bench/extractor_speed.py --n 256 --runs 3
"""

import argparse

import numpy as np
import torch
from timing import compare


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="images per run")
    parser.add_argument("--size", type=int, default=32, help="image side (resized to 299 inside)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=50, help="pytorch-fid's default is 50")
    args = parser.parse_args()

    from gantools.metrics.features import (
        INCEPTION_ID,
        OnnxExtractor,
        inception_module,
        inception_onnx_path,
    )

    path, sha = inception_onnx_path()
    ours = OnnxExtractor(path, INCEPTION_ID, sha, channels=3, device="auto")
    eager, _ = inception_module()
    images = np.random.default_rng(0).random((args.n, 3, args.size, args.size), dtype=np.float32)

    def run_ours():
        for i in range(0, args.n, args.batch_size):
            ours(images[i:i + args.batch_size])

    def run_eager():
        with torch.no_grad():
            for i in range(0, args.n, args.batch_size):
                eager(torch.from_numpy(images[i:i + args.batch_size]))

    print(f"provider: {ours.provider}, torch threads: {torch.get_num_threads()}, n={args.n}, "
          f"{args.size}x{args.size} -> 299x299, runs={args.runs}")
    compare({"onnxruntime": run_ours, "torch eager": run_eager}, args.n, args.runs, "img")


if __name__ == "__main__":
    main()
