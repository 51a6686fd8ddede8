"""Generation throughput: ONNX Runtime session vs the same generator in PyTorch eager.

Measured in one process on the same latents; reports the median of several
runs and the ratio.

    python bench/generate_speed.py exported/digits-dcgan.onnx runs/digits-dcgan --n 8192 --runs 5
"""

import argparse

import numpy as np
import torch
from timing import compare


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the exported generator (.onnx)")
    parser.add_argument("run", help="the run directory it was exported from")
    parser.add_argument("--n", type=int, default=8192)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from gantools.checkpoint import latest_checkpoint, load_checkpoint
    from gantools.export import checkpoint_to_modules
    from gantools.runtime import OnnxGenerator

    onnx_g = OnnxGenerator(args.model, "auto")
    torch_g, _ = checkpoint_to_modules(load_checkpoint(latest_checkpoint(args.run)))
    z = np.random.default_rng(0).standard_normal((args.n, onnx_g.latent_dim)).astype(np.float32)
    y = (np.arange(args.n) % onnx_g.num_classes) if onnx_g.num_classes else None

    def batches():
        for i in range(0, args.n, args.batch_size):
            yield z[i:i + args.batch_size], None if y is None else y[i:i + args.batch_size]

    def run_onnx():
        for zb, yb in batches():
            onnx_g(zb, yb)

    def run_torch():
        with torch.no_grad():
            for zb, yb in batches():
                torch_g(torch.from_numpy(zb), None if yb is None else torch.from_numpy(yb))

    print(f"provider: {onnx_g.provider}, n={args.n}, batch={args.batch_size}, runs={args.runs}")
    compare({"onnxruntime": run_onnx, "torch eager": run_torch}, args.n, args.runs, "samples")


if __name__ == "__main__":
    main()
