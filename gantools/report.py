"""One self-contained HTML page for a training run or a scoring job.

Every picture is a PNG inlined as a data: URL, the style is inline CSS and
there is no script, font or link to fetch: the file opens offline, from an
e-mail attachment or a CI artefact, and shows the same thing everywhere.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
from pathlib import Path

import numpy as np

from .errors import GanToolsError
from .files import write_text_atomic

SNAPSHOTS = 8  # training snapshots shown in the strip, evenly spaced, the last one always

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px;
       padding: 0 1rem; color: #1b1f24; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem; }
.story { font-size: 1.05rem; background: #f6f8fa; border-left: 4px solid #0969da; padding: 0.6rem 1rem; }
table { border-collapse: collapse; font-size: 0.9rem; } td, th { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem;
        text-align: left; } th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.strip { display: flex; flex-wrap: wrap; gap: 0.8rem; } figure { margin: 0; text-align: center; }
.strip.thumbs img { width: 250px; } .strip.trends img { width: 520px; }
figcaption { font-size: 0.8rem; color: #57606a; } img { max-width: 100%; image-rendering: pixelated; }
.plot img { image-rendering: auto; } details { margin-top: 0.5rem; } .muted { color: #57606a; font-size: 0.85rem; }
"""


def _png(img) -> str:
    """A PIL image (or PNG bytes) as a data: URL."""
    if isinstance(img, bytes):
        data = img
    else:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure(img, caption: str, alt: str, plot: bool = False) -> str:
    cls = ' class="plot"' if plot else ""
    return (
        f'<figure{cls}><img src="{_png(img)}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _table(header: list[str], rows: list[list], numeric=()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _page(title: str, sections: list[str]) -> str:
    made = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "".join(sections)
        + f'<p class="muted">made by gantools on {made}; self-contained: opens offline.</p></body></html>\n'
    )


def _fmt(value) -> str:
    if isinstance(value, float):
        return html.escape(f"{value:.6g}")
    if isinstance(value, (list, dict)):
        return html.escape(json.dumps(value))
    return html.escape(str(value))


def score_table(result: dict) -> str:
    """Every metric of a score result with its gate and pass/fail."""
    from .metrics.registry import GATE_KEYS

    gates = {g["metric"]: g for g in result.get("gates", [])}
    rows = []
    for key in GATE_KEYS:
        if key not in result:
            continue
        gate = gates.get(key)
        if gate:
            sign = "≤" if gate["op"] == "max" else "≥"
            verdict = '<span class="pass">pass</span>' if gate["passed"] else '<span class="fail">FAIL</span>'
            rows.append([key, _fmt(result[key]), f"{sign} {gate['threshold']:g}", verdict])
        else:
            rows.append([key, _fmt(result[key]), "", ""])
    verdict = '<span class="pass">passed</span>' if result.get("passed", True) else '<span class="fail">FAILED</span>'
    about = (
        f"{result.get('n')} samples of {html.escape(str(result.get('source')))} against {result.get('n_real')} of "
        f"{html.escape(str(result.get('real')))}; extractor {html.escape(str(result.get('extractor')))}; "
        f"{result.get('seconds', 0):.1f} s; {verdict}"
    )
    return _table(["metric", "value", "gate", "result"], rows, numeric=(1,)) + f'<p class="muted">{about}</p>'


def _is_score_record(record) -> bool:
    """A JSON object as `score --log` writes it: numbers (or null) for metrics, well-formed gates."""
    from .metrics.registry import GATE_KEYS

    if not isinstance(record, dict):
        return False
    number = (int, float, type(None))
    gates = record.get("gates", [])
    return (
        all(isinstance(record[k], number) and not isinstance(record[k], bool) for k in GATE_KEYS if k in record)
        and isinstance(gates, list)
        and all(
            isinstance(g, dict)
            and isinstance(g.get("metric"), str)
            and g.get("op") in ("max", "min")
            and isinstance(g.get("threshold"), (int, float))
            and isinstance(g.get("passed"), bool)
            for g in gates
        )
        and isinstance(record.get("passed", True), bool)
    )


def read_score_log(path) -> list[dict]:
    """The records of a `score --log` file, oldest first."""
    path = Path(path)
    if not path.is_file():
        raise GanToolsError(f"--scores: no such file: {path}")
    records = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not _is_score_record(record):
                raise GanToolsError(
                    f"--scores: {path} line {i} is not a score record; give a file written by `gantools score --log`"
                )
            records.append(record)
    if not records:
        raise GanToolsError(f"--scores: {path} holds no score records")
    return records


def _scores_section(records: list[dict]) -> str:
    from .metrics.registry import GATE_KEYS
    from .plots import metric_trend

    latest = records[-1]
    parts = ["<h2>Scores</h2>", score_table(latest)]
    if len(records) > 1:
        labels = [str(r.get("time", i))[:16].replace("T", " ") for i, r in enumerate(records)]
        figures = []
        for key in (k for k in GATE_KEYS if not k.endswith("_std")):  # spreads are not worth a plot of their own
            kept = [
                (lab, r[key]) for lab, r in zip(labels, records, strict=True) if isinstance(r.get(key), (int, float))
            ]
            if len(kept) < 2:
                continue
            gate = next((g for g in latest.get("gates", []) if g["metric"] == key), None)
            img = metric_trend(
                [k for k, _ in kept], [v for _, v in kept], key, (gate["op"], gate["threshold"]) if gate else None
            )
            figures.append(_figure(img, f"{key} over {len(kept)} score records", f"trend of {key}", plot=True))
        parts += [
            f"<h2>Trends over {len(records)} score records</h2>",
            '<div class="strip trends">',
            *figures,
            "</div>",
        ]
    return "".join(parts)


def _snapshots(run: Path) -> list[Path]:
    found = sorted((run / "samples").glob("step_*.png"))
    if len(found) <= SNAPSHOTS:
        return found
    picks = np.linspace(0, len(found) - 1, SNAPSHOTS).round().astype(int)
    return [found[i] for i in sorted(set(picks))]


def _story(config: dict, rows: list[dict], steps_done: int) -> str:
    from .health import diagnose, summary

    shape = config.get("sample_shape", [])
    samples = f"{shape[0]}-D points" if config.get("kind") == "points" else f"{'×'.join(map(str, shape))} images"
    kind = {"mlp": "MLP GAN", "dcgan": "DCGAN"}.get(str(config.get("model")), str(config.get("model")))
    what = (
        f"A {'conditional ' if config.get('num_classes') else ''}{kind} on "
        f"<b>{html.escape(str(config.get('data')))}</b> ({samples}), {config.get('loss')} loss, "
        f"trained {steps_done:,} of {config.get('steps', 0):,} steps with batch {config.get('batch_size')}"
        f"{' on ' + str(config.get('world_size')) + ' processes' if config.get('world_size', 1) > 1 else ''}."
    )
    if rows:
        last = rows[-1]
        gap = last["d_real"] - last["d_fake"]
        verdict = (
            "the discriminator still tells real from generated clearly"
            if gap > 2
            else "the discriminator sees little difference between real and generated samples"
            if gap < 0.5
            else "the discriminator separates real from generated moderately"
        )
        what += (
            f" At the end: D loss {last['d_loss']:.3f}, G loss {last['g_loss']:.3f}; mean logits "
            f"D(real) {last['d_real']:.2f} vs D(fake) {last['d_fake']:.2f}: {verdict}."
        )
        if "seconds" in last:
            what += f" Training took {last['seconds']:.0f} s for the logged steps."
        health = summary(diagnose(rows, str(config.get("loss", "ns")), config.get("steps")))
        what = f"<b>Health: {html.escape(health)}.</b> " + what
    return f'<p class="story">{what}</p>'


def run_report(run, out, *, model=None, scores=None, device: str = "auto", curves=None) -> Path:
    """report.html of a run directory: story, config, curves, sample strip, final samples, scores.

    `curves`: the training_curves picture when the caller has drawn it already."""
    from .checkpoint import read_log, read_run_config
    from .plots import training_curves

    run, out = Path(run), Path(out)
    config = read_run_config(run)
    rows = read_log(run)
    records = read_score_log(scores) if scores is not None else None
    steps_done = rows[-1]["step"] if rows else 0
    sections = [f"<h1>gantools run: {html.escape(run.name)}</h1>", _story(config, rows, steps_done)]
    if rows:
        sections += [
            "<h2>Training curves</h2>",
            _figure(
                curves or training_curves(rows),
                "losses and discriminator outputs per logged step",
                "loss and D output curves",
                plot=True,
            ),
        ]
    snaps = _snapshots(run)
    if snaps:
        sections += [
            "<h2>Samples during training</h2>",
            '<p class="muted">Fixed latents, the generator used for export (EMA when on), '
            "at evenly spaced steps (left to right).</p>",
            '<div class="strip thumbs">',
        ]
        sections += [
            _figure(p.read_bytes(), f"step {int(p.stem.split('_')[1]):,}", f"samples at {p.stem}") for p in snaps
        ]
        sections.append("</div>")
    if model is not None:
        sections += ["<h2>Samples from the exported generator</h2>", _model_samples(model, device)]
        sections += ["<h2>Latent walks</h2>", _model_walk(model, device)]
    if records is not None:
        sections.append(_scores_section(records))
    config_rows = [[html.escape(k), _fmt(v)] for k, v in config.items()]
    sections += [
        "<h2>Configuration</h2>",
        "<details open><summary>config.json</summary>",
        _table(["option", "value"], config_rows),
        "</details>",
    ]
    write_text_atomic(out, _page(f"gantools run {run.name}", sections))
    return out


def _model_walk(model, device: str) -> str:
    """The exported generator's latent walks (as `gantools walk MODEL`), with their smoothness."""
    from .runtime import OnnxGenerator
    from .walk import model_walks, walk_picture

    g = OnnxGenerator(model, device)
    walks, s = model_walks(g)
    caption = (
        f"spherical walks between latents of seed 0{', within and across mixture components' if s['mixture'] else ''}"
        f"{'; the first walk once per class' if g.num_classes else ''}. Neighbouring samples lie {s['step_mean']:.2f} "
        f"apart on average and at most {s['step_max']:.2f} (1 = the mean distance between two random samples)"
    )
    return _figure(walk_picture(g, walks), caption, f"latent walks of {Path(model).name}", plot=g.kind != "image")


def _model_samples(model, device: str) -> str:
    from .generate import GRID_MAX, GRID_POINTS, model_picture, sample_batch
    from .runtime import OnnxGenerator

    g = OnnxGenerator(model, device)
    n = GRID_MAX if g.kind == "image" else GRID_POINTS
    if g.kind == "image" and g.num_classes:
        n = g.num_classes * max(1, GRID_MAX // g.num_classes)
    _, y, x = sample_batch(g, 0, 0, n)
    caption = f"{n} samples of {Path(model).name}, seed 0" + (", one row per class" if g.num_classes else "")
    return _figure(model_picture(g, x, y), caption, f"samples of {Path(model).name}", plot=g.kind != "image")


def score_report(
    result: dict, out, *, samples_picture_img, points: bool, neighbours_img=None, suspects_img=None
) -> Path:
    """The page of a scoring job: the score table, the scored samples, nearest real neighbours, and the
    copying test's generated samples nearest to the training data."""
    what = "scatter plot of the first scored points over the true modes" if points else "the first scored samples"
    sections = [
        f"<h1>gantools score: {html.escape(Path(str(result['source'])).name)}</h1>",
        "<h2>Scores</h2>",
        score_table(result),
        "<h2>Scored samples</h2>",
        _figure(samples_picture_img, what, "scored samples", plot=points),
    ]
    if neighbours_img is not None:
        sections += [
            "<h2>Nearest real neighbours</h2>",
            '<p class="muted">Each row: a generated sample (left column) and the real samples closest to it '
            "in the extractor's feature space. Near-copies of real samples suggest memorisation.</p>",
            _figure(neighbours_img, "generated | nearest real, nearer first", "nearest real neighbours"),
        ]
    if suspects_img is not None:
        ids = ", ".join(str(s["sample"]) for s in result["copying_suspects"])
        sections += [
            "<h2>Nearest to the training data</h2>",
            '<p class="muted">The generated samples closest to a training sample in the extractor\'s feature '
            f"space (ids {html.escape(ids)}), each beside that training sample. Copies look identical; C_T "
            f"{result['copying_ct']:.3g} (below -3: copying), {result['copying_share']:.1%} of samples nearer "
            "a training sample than the closest 1% of held-out samples are (about 1% without copying).</p>",
            _figure(suspects_img, "generated | its nearest training sample", "samples nearest the training data"),
        ]
    write_text_atomic(out, _page(f"gantools score {Path(str(result['source'])).name}", sections))
    return Path(out)
