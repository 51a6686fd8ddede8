"""The documentation's examples cannot rot.

Every fenced shell or Python block of README.md and docs/*.md runs here, in a temporary directory
beside a link to the shipped models, in the order the page gives them, or carries a marker on the line
above its fence: `<!-- doctest: slow (why) -->` runs it only with `-m slow`, `<!-- doctest: skip (why) -->`
never. Whatever runs or not, every `gantools` command line in the docs (blocks, YAML jobs and inline
code, and the inline code of bench/README.md and exported/README.md) must name a command and options
the CLI has, and every `gantools.x.y` name must resolve.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CHECKED = [*DOCS, ROOT / "bench" / "README.md", ROOT / "exported" / "README.md"]  # commands and names checked
MARKER = re.compile(r"^<!--\s*doctest:\s*(slow|skip)\s*\((.+)\)\s*-->$")
RUNNABLE = {"sh": "sh", "python": "python"}
LANGUAGES = {"sh", "python", "yaml"}


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    mark: str  # "run", "slow" or "skip"
    reason: str

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, each with the doctest marker just above it (if any)."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang, start = lines[i][3:].strip(), i
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            above = lines[start - 1].strip() if start else ""
            found = MARKER.match(above)
            mark, reason = (found.group(1), found.group(2).strip()) if found else ("run", "")
            blocks.append(Block(path, start + 1, lang, "\n".join(lines[start + 1 : end]), mark, reason))
            i = end
        i += 1
    return blocks


ALL_BLOCKS = [b for path in DOCS for b in read_blocks(path)]


def test_the_docs_exist():
    names = {p.name for p in DOCS}
    wanted = {"training.md", "generation.md", "scoring.md", "ci.md", "scaling.md", "api.md", "robustness.md"}
    assert wanted <= names
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
    assert len((ROOT / "bench" / "README.md").read_text().splitlines()) <= 300


def test_every_example_runs_or_says_why():
    for path in DOCS:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if "doctest" in line and line.lstrip().startswith("<!--"):
                assert MARKER.match(line.strip()), f"{path.name}:{n}: write <!-- doctest: slow|skip (reason) -->"
    for block in ALL_BLOCKS:
        assert block.lang in LANGUAGES, f"{block.where()}: a fenced block needs a language of {sorted(LANGUAGES)}"
        if block.lang not in RUNNABLE:
            assert block.mark == "skip", f"{block.where()}: a {block.lang} block cannot run: mark it skip (why)"


# ---- commands and options ----------------------------------------------------------------------


def _command_lines(text: str, yaml: bool) -> list[str]:
    """Lines of shell, continuations joined (and a YAML folded scalar's lines, which start with --)."""
    text = text.replace("\\\n", " ")
    out: list[str] = []
    for line in text.splitlines():
        if yaml and out and line.strip().startswith("--"):
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return out


def gantools_calls(line: str) -> list[tuple[str, list[str]]]:
    """(subcommand, arguments) of each gantools invocation on a shell line: `gantools X`, `-m gantools X`."""
    lexer = shlex.shlex(
        line.split("run:", 1)[-1] if line.lstrip().startswith(("- run:", "run:")) else line,
        posix=True,
        punctuation_chars=True,
    )
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote in YAML or prose: not a command line
        return []
    calls = []
    for i, token in enumerate(tokens):
        first = i == 0 or tokens[i - 1] in {"&&", "||", ";", "|", "-", "(", "$("} or tokens[i - 1] == "-m"
        if token == "gantools" and first and i + 1 < len(tokens):
            args = []
            for arg in tokens[i + 2 :]:
                if arg in {"&&", "||", ";", "|", ">", ")"}:
                    break
                args.append(arg)
            calls.append((tokens[i + 1], args))
    return calls


def _all_calls():
    calls = []
    for block in ALL_BLOCKS:
        for line in _command_lines(block.text, block.lang == "yaml"):
            calls += [(block.where(), sub, args) for sub, args in gantools_calls(line)]
    for path in CHECKED:
        for span in re.findall(r"`(gantools [^`]+)`", path.read_text().replace("\n", " ")):
            calls += [(f"{path.name} (inline)", sub, args) for sub, args in gantools_calls(span)]
    return calls


def test_documented_commands_and_options_exist():
    from gantools.cli import cli

    calls = _all_calls()
    assert len(calls) > 50, "the parser found too few gantools commands in the docs"
    for where, sub, args in calls:
        if sub in {"--help", "-h", "--version"}:
            continue
        assert sub in cli.commands, f"{where}: `gantools {sub}` is no command"
        known = {opt for p in cli.commands[sub].params for opt in (*p.opts, *p.secondary_opts)} | {"-h", "--help"}
        for arg in args:
            if arg.startswith("-") and not re.fullmatch(r"-[\d.]+", arg):
                name = arg.split("=", 1)[0]
                assert name in known, f"{where}: `gantools {sub}` has no option {name}"


def test_the_option_check_can_fail():
    """The checker sees options: a renamed flag in a documented line would be caught."""
    assert gantools_calls("gantools score x --real y --max fid=3 && gantools walk m -o w.png") == [
        ("score", ["x", "--real", "y", "--max", "fid=3"]),
        ("walk", ["m", "-o", "w.png"]),
    ]
    assert gantools_calls("pip install gantools") == []
    assert gantools_calls("torchrun --nproc-per-node 2 -m gantools generate m.onnx -n 4") == [
        ("generate", ["m.onnx", "-n", "4"])
    ]


def test_documented_api_names_exist():
    names = set()
    for path in CHECKED:
        names |= set(re.findall(r"\bgantools(?:\.[A-Za-z_]\w*)+", path.read_text()))
    assert names, "no gantools.x name found in the docs"
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
                break
            except ModuleNotFoundError:
                continue
        for attr in parts[cut:]:
            assert hasattr(obj, attr), f"the docs name {name}, which does not exist"
            obj = getattr(obj, attr)


# ---- running the examples ----------------------------------------------------------------------


def _run_page(path: Path, marks: set[str], tmp_path: Path) -> int:
    (tmp_path / "exported").symlink_to(ROOT / "exported")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ran = 0
    for block in (b for b in read_blocks(path) if b.mark in marks and b.lang in RUNNABLE):
        command = (
            ["bash", "-euo", "pipefail", "-c", block.text] if block.lang == "sh" else [sys.executable, "-c", block.text]
        )
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
        output = f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        assert done.returncode == 0, f"{block.where()} exited {done.returncode}\n{output}"
        ran += 1
    return ran


PAGES_WITH = {
    mark: [p for p in DOCS if any(b.mark == mark and b.lang in RUNNABLE for b in read_blocks(p))]
    for mark in ("run", "slow")
}


@pytest.mark.parametrize("path", PAGES_WITH["run"], ids=lambda p: p.name)
def test_examples_run(path, tmp_path):
    assert _run_page(path, {"run"}, tmp_path) > 0


@pytest.mark.slow
@pytest.mark.parametrize("path", PAGES_WITH["slow"], ids=lambda p: p.name)
def test_slow_examples_run(path, tmp_path):
    """The slow blocks, with the page's other runnable blocks in their order (a later one may need them)."""
    assert _run_page(path, {"run", "slow"}, tmp_path) > 0
