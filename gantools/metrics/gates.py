"""Quality gates on a score record, and the record as a table a person reads."""

from __future__ import annotations

import math

from ..errors import GanToolsError
from .registry import ALIASES, GATE_KEYS


def parse_gate(op: str, text: str) -> tuple[str, str, float]:
    """'fid=40' -> ('max', 'fid', 40.0); the metric name must be one the JSON reports."""
    name, sep, value = text.partition("=")
    name = ALIASES.get(name.strip(), name.strip())
    if not sep or name not in GATE_KEYS:
        raise GanToolsError(f"--{op} takes METRIC=VALUE with METRIC one of {', '.join(GATE_KEYS)}; got {text!r}")
    try:
        bound = float(value)
    except ValueError:
        bound = math.nan
    if math.isnan(bound):
        raise GanToolsError(f"--{op} {text}: {value!r} is not a number")
    return op, name, bound


def check_gate(op: str, key: str, limit: float, value: float) -> dict:
    ok = value <= limit if op == "max" else value >= limit
    return {"metric": key, "op": op, "threshold": limit, "value": value, "passed": bool(ok)}


def format_table(result: dict) -> str:
    """The human-readable result: one metric per line, its gate beside it."""
    gates = {g["metric"]: g for g in result["gates"]}
    spread = {"kid_mean": "kid_std", "is_mean": "is_std"}
    lines = [f"{'metric':16s} {'value':>24s}   gate"]
    for key in GATE_KEYS:
        if key not in result or key in spread.values():
            continue
        text = f"{result[key]:.6g}" + (f" ± {result[spread[key]]:.3g}" if key in spread else "")
        for base in (key, key.removesuffix("_mean"), key.removesuffix("_accuracy")):
            if f"{base}_ci_low" in result:
                text += f" [{result[base + '_ci_low']:.4g}, {result[base + '_ci_high']:.4g}]"
                break
        gate = gates.get(key)
        mark = ""
        if gate:
            sign = "<=" if gate["op"] == "max" else ">="
            mark = f"{sign} {gate['threshold']:g}  {'ok' if gate['passed'] else 'FAIL'}"
        lines.append(f"{key:16s} {text:>24s}   {mark}".rstrip())
    verdict = "passed" if result["passed"] else "FAILED"
    lines.append(
        f"n={result['n']} n_real={result['n_real']} extractor={result['extractor']} "
        f"{result['seconds']:.1f} s: {verdict}"
    )
    return "\n".join(lines)
