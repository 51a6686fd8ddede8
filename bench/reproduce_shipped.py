"""Do exported/README.md's commands still make the shipped models? Retrain each and compare.

The shipped files in exported/ are runs of the recipes (the seed each one
ships is exported/README.md's rule), and exported/README.md's table gives the
command that makes each. A change to the
training code that moves its floating-point sums makes other weights of the
same quality, and nothing else notices: the shipped files, and every figure
measured on them, silently stop being what their commands make. This script
runs every command of that table (paths moved into a scratch folder, one
thread each, two side by side, as bench/quality.py runs them) and compares each
file it writes with the shipped one: byte for byte, else the largest weight
difference. Exit status 1 when any differs.

Floats depend on the CPU's instruction set (MKL_CBWR=AUTO picks the machine's
fastest reproducible path), so only the machine the files were made on can
expect identical bytes: a 2-core AVX-512 Intel Xeon for the 2-D and digits
files, a 2-core AMD EPYC for the MNIST ones (PyTorch 2.13.0 for all).

    python bench/reproduce_shipped.py            # every file; the two MNIST DCGANs take 19 minutes side by side
    python bench/reproduce_shipped.py --only ring,grid
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from gantools.export import disc_path_for

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "exported"
# started first, side by side: the whole check ends sooner
LONGEST = ("mnist-dcgan.onnx", "mnist-cdcgan.onnx", "digits-dcgan.onnx", "digits-cdcgan.onnx")
ROW = re.compile(r"^\| `([\w.-]+\.onnx)`(?:, `[\w.-]+\.onnx`)? \| `(gantools [^`]+)` \|$")


def shipped_commands(readme: Path) -> dict[str, str]:
    """{generator or classifier file name: the shell command exported/README.md's table gives for it}."""
    rows = [ROW.match(line) for line in readme.read_text().splitlines()]
    found = {m.group(1): m.group(2) for m in rows if m}
    if not found:
        raise SystemExit(f"{readme}: no '| `NAME.onnx` | `gantools ...` |' rows found")
    return found


def relocated(command: str, scratch: Path) -> str:
    """The command with its runs/ and exported/ paths inside `scratch`."""
    return command.replace("runs/", f"{scratch}/runs/").replace("exported/", f"{scratch}/exported/")


def weights(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def compare(made: Path, shipped: Path) -> str:
    """'identical', or how the two ONNX files differ."""
    if not made.exists():
        return "not made"
    if made.read_bytes() == shipped.read_bytes():
        return "identical"
    a, b = weights(made), weights(shipped)
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return "differs: other tensors"
    worst = max((float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in a if a[k].size), default=0.0)
    return f"differs: weights up to {worst:.3g} apart" if worst else "differs: same weights, other metadata"


def reproduce(name: str, command: str, scratch: Path, env: dict) -> tuple[str, float, list[str]]:
    """Run one table command; (name, seconds, the comparison of each file it made with the shipped one)."""
    t0 = time.perf_counter()
    done = subprocess.run(["bash", "-c", relocated(command, scratch)], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        return name, seconds, [f"{name}: command failed ({done.returncode}): {done.stderr.strip()[-300:]}"]
    disc = disc_path_for(name).name  # a GAN's discriminator, made by the same command
    files = [name, disc] if (SHIPPED / disc).exists() else [name]
    return name, seconds, [f"{f}: {compare(scratch / 'exported' / f, SHIPPED / f)}" for f in files]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="comma-separated names as in the table (ring, digits-dcgan, ...)")
    parser.add_argument("--jobs", type=int, default=2, help="commands side by side, one thread each")
    args = parser.parse_args()
    commands = shipped_commands(SHIPPED / "README.md")
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - {n.removesuffix(".onnx") for n in commands}
        if unknown:
            parser.error(
                f"--only: no shipped model {', '.join(sorted(unknown))}; exported/README.md's table has "
                f"{', '.join(sorted(n.removesuffix('.onnx') for n in commands))}"
            )
        commands = {n: c for n, c in commands.items() if n.removesuffix(".onnx") in wanted}
    # the table's `gantools` is this interpreter's, whether or not its environment is activated
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), PATH=path)
    with tempfile.TemporaryDirectory(prefix="gantools-shipped-") as tmp:
        scratch = Path(tmp)
        (scratch / "exported").mkdir()
        env["GANTOOLS_CACHE"] = str(scratch / "cache")
        longest_first = sorted(commands.items(), key=lambda kv: kv[0] not in LONGEST)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(lambda kv: reproduce(*kv, scratch, env), longest_first))
    differs = False
    for _name, seconds, lines in sorted(results):
        for line in lines:
            differs |= not line.endswith(": identical")
            print(f"{line}  ({seconds:.0f} s)")
    print(
        "\nevery shipped file is what its command makes"
        if not differs
        else "\nsome shipped files are not what their commands make on this machine (see exported/README.md)"
    )
    sys.exit(1 if differs else 0)


if __name__ == "__main__":
    main()
