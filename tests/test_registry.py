"""The metric registry: declarations that match what the metrics report, and a score that reads them."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from gantools.metrics.registry import GATE_KEYS, NEEDS, REGISTRY, Options
from gantools.metrics.score import score

PACKAGE = Path(__file__).resolve().parents[1] / "gantools"
RECORD_KEYS = {"n", "n_real", "extractor", "source", "real", "seconds", "world_size", "gates", "passed"}


def test_declarations_are_whole():
    keys = [key for m in REGISTRY.values() for key in m.keys]
    assert tuple(keys) == GATE_KEYS
    every = keys + [key for m in REGISTRY.values() for key in m.details] + sorted(RECORD_KEYS)
    assert len(every) == len(set(every)), "a JSON key belongs to one metric, or to the record"
    for m in REGISTRY.values():
        assert m.needs and m.needs <= set(NEEDS), m.name
        assert m.alias is None or m.alias in m.keys, m.name
        module, function = m.compute.split(":")
        assert callable(getattr(importlib.import_module(f"gantools.metrics.{module}"), function)), m.compute
        assert m.least(Options()) >= 1
    assert REGISTRY["prdc"].least(Options(k_pr=3, k_dc=7)) == 8
    assert REGISTRY["c2st"].least(Options(c2st_folds=20)) == 20


def test_the_cli_offers_every_registered_metric():
    """score's --metrics help (written out, so --help imports no metric code) names the registry's metrics."""
    from gantools.cli import cli

    option = next(p for p in cli.commands["score"].params if p.name == "metrics")
    assert option.help == f"Comma-separated: {', '.join(REGISTRY)}."


def test_score_never_branches_on_a_metric_name():
    """score.py orchestrates from the declarations: no string literal in its code names a metric (the
    docstrings and score()'s default metric aside)."""
    tree = ast.parse((PACKAGE / "metrics" / "score.py").read_text())
    aside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef)) and node.body and isinstance(node.body[0], ast.Expr):
            aside.add(id(node.body[0].value))
        if isinstance(node, ast.FunctionDef):
            aside |= {id(c) for d in node.args.defaults + node.args.kw_defaults if d for c in ast.walk(d)}
    named = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and id(node) not in aside and node.value in REGISTRY
    ]
    assert named == []


def test_the_report_does_not_import_scoring():
    """The report takes a finished score record: importing it loads neither score.py nor its passes."""
    code = (
        "import sys, gantools.report\n"
        "loaded = [m for m in ('gantools.metrics.score', 'gantools.metrics.extract') if m in sys.modules]\n"
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    imports = {
        node.module
        for node in ast.walk(ast.parse((PACKAGE / "report.py").read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {"metrics.score", "metrics.extract", "metrics.sides"} & imports


def _metric_keys(result: dict, name: str) -> set:
    """The keys of `result` that are neither the record's nor another metric's."""
    others = {key for m in REGISTRY.values() if m.name != name for key in (*m.keys, *m.details)}
    return set(result) - RECORD_KEYS - others


@pytest.mark.parametrize(
    "model, metrics, options",
    [
        ("ring", "fid,kid,prdc,modes,disc,c2st", {"real": "ring", "n": 200, "n_real": 200}),
        (
            "cdcgan",
            "classes,copying",
            {"real": "digits:test", "train": "digits:train", "n": 400, "extractor": "classifier"},
        ),
    ],
)
def test_each_metric_reports_exactly_its_declared_keys(model, metrics, options, exported, digits_classifier):
    if options.get("extractor") == "classifier":
        options = {**options, "classifier": digits_classifier}
    result = score(exported[model], metrics=metrics.split(","), progress=False, cache=False, **options)
    assert result is not None
    for name in metrics.split(","):
        declared = REGISTRY[name]
        assert _metric_keys(result, name) <= {*declared.keys, *declared.details}, name
        assert set(declared.keys) <= set(result), name
