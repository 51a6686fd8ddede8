"""How far 2-process DDP training ends from the 1-process run, and how far one ulp moves a 1-process run.

For each seed: `gantools train` alone, the same under `torchrun
--nproc-per-node 2`, the 1-process run with each real batch in reverse row
order (the same loss, summed in another order: DDP's kind of change), and
the 1-process run with one generator weight moved by one float32 ulp at the
start. Prints the largest |difference| from the plain run of the final
generators' outputs on 1,000 fixed latents.

    python bench/ddp_drift.py --data ring --steps 20 60 --seeds 0 1 2 3
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

NUDGE = """
import sys, torch
import gantools.models as m
build = m.build_models
def nudged(config):
    g, d = build(config)
    w = next(p for n, p in g.named_parameters() if p.dim() == 2 and "embed" not in n)
    with torch.no_grad():
        w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(float("inf")))
    return g, d
m.build_models = nudged
from gantools.cli import main
main(sys.argv[1:])
"""

REVERSED = """
import sys
import gantools.data as data
draw = data.MixtureSource.draw
def reversed_rows(self, *args, **kwargs):
    x, y = draw(self, *args, **kwargs)
    return x[::-1].copy(), y[::-1].copy()
data.MixtureSource.draw = reversed_rows
from gantools.cli import main
main(sys.argv[1:])
"""


def outputs(run: Path):
    from gantools.checkpoint import latest_checkpoint, load_checkpoint
    from gantools.models import build_models

    state = load_checkpoint(latest_checkpoint(run))
    g, _ = build_models(state["config"])
    g.load_state_dict(state["generator"])
    g.eval()
    k = state["config"]["num_classes"]
    z = torch.randn(1000, state["config"]["latent_dim"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return g(z, torch.arange(1000) % k if k else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ring", help="ring or grid (the reversal patches their source)")
    parser.add_argument("--steps", type=int, nargs="+", default=[20, 60])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launchers = {
        "1 process": [sys.executable, "-m", "gantools"],
        "2 processes": [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "gantools",
        ],
        "1 process, rows reversed": [sys.executable, "-c", REVERSED],
        "1 process, 1 ulp": [sys.executable, "-c", NUDGE],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for steps in args.steps:
            for seed in args.seeds:
                out = {}
                for name, launcher in launchers.items():
                    run = Path(tmp) / f"{steps}-{seed}-{len(out)}"
                    subprocess.run(
                        [
                            *launcher,
                            "train",
                            "--data",
                            args.data,
                            "--steps",
                            str(steps),
                            "--seed",
                            str(seed),
                            "--out",
                            str(run),
                            "-q",
                        ],
                        env=env,
                        check=True,
                        capture_output=True,
                    )
                    out[name] = outputs(run)
                gaps = ", ".join(
                    f"{name} {float((x - out['1 process']).abs().max()):.2e}"
                    for name, x in out.items()
                    if name != "1 process"
                )
                print(f"{args.data} steps {steps:4d} seed {seed}: max |G(z) - 1 process|: {gaps}", flush=True)


if __name__ == "__main__":
    main()
