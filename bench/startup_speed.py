"""Start-up time of `gantools --help` and `gantools info MODEL`, beside the floors they stand on.

Each command runs as a new process, as a user or a CI step runs it: median of --runs, interleaved. The
floors are a bare interpreter and `import onnxruntime` (which imports NumPy), the least any `info` can take.
The package's bytecode is compiled first, as `pip install` does: with PYTHONDONTWRITEBYTECODE set (some
sandboxes set it) and no compiled files, every start recompiles gantools' sources (info took 0.32–0.36 s
that way, against 0.276 s here).

    python bench/startup_speed.py [--runs 15] [--model exported/digits-dcgan.onnx] [--json FILE]
"""

import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from timing import bench_parser, save_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 0.3  # issue 9: --help and info stay under 0.3 s


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--model", default=str(ROOT / "exported" / "digits-dcgan.onnx"))
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    compileall.compile_dir(ROOT / "gantools", quiet=1)
    gantools = str(Path(sys.executable).with_name("gantools"))
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import onnxruntime'": [sys.executable, "-c", "import onnxruntime"],
        "gantools --help": [gantools, "--help"],
        "gantools info MODEL": [gantools, "info", args.model],
    }
    times = {name: [] for name in commands}
    for _ in range(runs + 1):  # the first round warms the file cache and is dropped
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=os.environ)
            times[name].append(time.perf_counter() - t0)
    result = {"runs": runs, "target_s": TARGET_S, "median_s": {}}
    for name, values in times.items():
        med = statistics.median(values[1:])
        result["median_s"][name] = med
        verdict = "" if name.startswith("python") else ("  under target" if med < TARGET_S else "  OVER target")
        print(f"{name:32s} median {med:.3f} s  (min {min(values[1:]):.3f}){verdict}")
    save_json(args.json, result)


if __name__ == "__main__":
    main()
