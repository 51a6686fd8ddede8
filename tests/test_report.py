"""Plots, the HTML reports and TensorBoard logs, checked as files and, in headless Chromium, as a page."""

from __future__ import annotations

import base64
import io
import json
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from browser import find_chromium, load_page
from conftest import assert_usage_error
from PIL import Image

from gantools.plots import _spans_decades, scatter_plot, smooth, training_curves


class _Page(HTMLParser):
    """The parts of a page a test looks at: headings, image sources, scripts, links, external references."""

    def __init__(self, text: str):
        super().__init__()
        self.h2, self.images, self.tags, self.refs, self._in_h2 = [], [], [], [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self._in_h2 = tag == "h2"
        if tag == "img":
            self.images.append(attrs["src"])
        self.refs += [v for k, v in attrs.items() if k in ("src", "href") and v and not v.startswith("data:")]

    def handle_endtag(self, tag):
        self._in_h2 = self._in_h2 and tag != "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.h2.append(data.strip())


def _check_self_contained(text: str) -> _Page:
    page = _Page(text)
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert page.refs == []  # nothing fetched: every picture is a data: URL
    assert "http://" not in text and "https://" not in text
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        img.load()
        assert img.width > 20 and img.height > 20
    return page


def test_smoothing_is_a_bias_corrected_moving_average():
    np.testing.assert_allclose(smooth([1.0, 0.0], weight=0.5), [1.0, 1 / 3])  # (0.25 + 0) / 0.75
    np.testing.assert_allclose(smooth([2.0] * 5), [2.0] * 5)
    assert np.isnan(smooth([np.nan, 1.0])[0]) and smooth([np.nan, 1.0])[1] == 1.0
    assert _spans_decades([0.01, 5.0]) and not _spans_decades([0.5, 5.0]) and not _spans_decades([-1.0, 500.0])


def test_plots_render_with_axes_and_content():
    rows = [
        {"step": s, "d_loss": 1.0 + 0.1 * np.sin(s), "g_loss": 0.7, "d_real": 0.2, "d_fake": -0.2}
        for s in range(10, 210, 10)
    ]
    curves = np.asarray(training_curves(rows))
    assert curves.shape[0] > 400 and len(np.unique(curves.reshape(-1, 3), axis=0)) > 50
    centers = np.array([[1.0, 0.0], [-1.0, 0.0]])
    picture = np.asarray(
        scatter_plot(np.random.default_rng(0).normal(size=(500, 2)) * 0.02 + centers[0], centers, 0.05)
    )
    red = (picture[..., 0] > 200) & (picture[..., 1] < 80) & (picture[..., 2] < 80)
    blue = (picture[..., 2] > 150) & (picture[..., 0] < 120)
    assert red.sum() > 50 and blue.sum() > 50  # the modes' centres and circles, and the samples


@pytest.fixture(scope="module")
def ring_report(tmp_path_factory, exported):
    """A ring run (its own report.html), two score records of the exported ring model, and the full report."""
    from gantools.cli import main

    root = tmp_path_factory.mktemp("report")
    run, log = root / "run", root / "scores.jsonl"

    def cli(*args):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        assert exc.value.code == 0

    cli("train", "--data", "ring", "--steps", 60, "--sample-every", 20, "--log-every", 10, "--out", run, "-q")
    for seed in (0, 1):
        cli(
            "score",
            exported["ring"],
            "--real",
            "ring",
            "--metrics",
            "fid,modes",
            "--max",
            "fid=5",
            "--seed",
            seed,
            "--log",
            log,
            "-q",
        )
    cli("report", run, "-o", root / "report.html", "--model", exported["ring"], "--scores", log)
    return run, root / "report.html"


def test_training_writes_a_report_and_report_command_adds_model_and_scores(ring_report):
    run, full = ring_report
    own = _check_self_contained((run / "report.html").read_text())
    assert own.h2 == ["Training curves", "Samples during training", "Configuration"]
    assert len(own.images) == 1 + 3  # curves, snapshots at steps 20, 40, 60
    page = _check_self_contained(full.read_text())
    assert page.h2 == [
        "Training curves",
        "Samples during training",
        "Samples from the exported generator",
        "Latent walks",
        "Scores",
        "Trends over 2 score records",
        "Configuration",
    ]
    text = full.read_text()
    assert "≤ 5" in text and "pass" in text  # the gate and its verdict
    assert "Neighbouring samples lie" in text  # the walks' smoothness
    # + the model's samples and walks, + trends of fid, modes, hq_fraction, rkl
    assert len(page.images) == 1 + 3 + 1 + 1 + 4


def test_score_report_shows_samples_and_nearest_real_neighbours(tmp_path, cli, exported, digits_classifier):
    out = tmp_path / "score.html"
    code, stdout, err = cli(
        "score",
        exported["cdcgan"],
        "--real",
        "digits:test",
        "-n",
        100,
        "--metrics",
        "fid,kid",
        "--extractor",
        "classifier",
        "--classifier",
        digits_classifier,
        "--report",
        out,
        "-q",
    )
    assert code == 0, err
    page = _check_self_contained(out.read_text())
    assert page.h2 == ["Scores", "Scored samples", "Nearest real neighbours"]
    neighbours = Image.open(io.BytesIO(base64.b64decode(page.images[1].split(",", 1)[1])))
    assert neighbours.width > neighbours.height / 8 * 5 * 0.9  # 8 rows of a sample and its 4 neighbours
    points = tmp_path / "points.html"
    assert cli("score", exported["ring"], "--real", "ring", "--metrics", "modes", "--report", points, "-q")[0] == 0
    assert _check_self_contained(points.read_text()).h2 == ["Scores", "Scored samples"]


def test_report_errors_are_one_line(cli, tmp_path, ring_report):
    run, _ = ring_report
    assert_usage_error(cli("report", tmp_path / "nothing", "-o", tmp_path / "r.html"), "config.json")
    assert_usage_error(cli("report", run, "-o", tmp_path / "r.png"), ".html")
    good = '{"fid": 1.5, "gates": [{"metric": "fid", "op": "max", "threshold": 2, "passed": true}]}\n'
    for bad in ("{not json\n", "[1, 2]\n", '{"gates": 5}\n', '{"fid": "low"}\n', '{"gates": [{"metric": 1}]}\n'):
        (tmp_path / "bad.jsonl").write_text(good + bad)
        assert_usage_error(
            cli("report", run, "-o", tmp_path / "r.html", "--scores", tmp_path / "bad.jsonl"),
            "line 2",
            "not a score record",
        )
    assert_usage_error(
        cli("score", "ring", "--real", "ring", "--metrics", "modes", "--report", tmp_path / "x.txt"),
        "--report",
        ".html",
    )
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "x.txt").exists()


def test_tensorboard_logs_scalars_and_samples(tmp_path, cli):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert (
        cli(
            "train",
            "--data",
            "ring",
            "--steps",
            20,
            "--log-every",
            5,
            "--sample-every",
            10,
            "--tensorboard",
            "--out",
            run,
            "-q",
        )[0]
        == 0
    )
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"train/d_loss", "train/g_loss", "train/d_real", "train/d_fake", "train/steps_per_s"} <= set(
        events.Tags()["scalars"]
    )
    logged = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    assert [e.step for e in events.Scalars("train/d_loss")] == [r["step"] for r in logged]
    np.testing.assert_allclose(
        [e.value for e in events.Scalars("train/d_loss")], [r["d_loss"] for r in logged], rtol=1e-6
    )
    assert [e.step for e in events.Images("samples")] == [10, 20]


def test_tensorboard_without_the_package_is_a_one_line_error(tmp_path, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    assert_usage_error(
        cli("train", "--data", "ring", "--steps", 5, "--tensorboard", "--out", tmp_path / "run"),
        "gantools[tensorboard]",
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium here (.ci/run installs Debian's chromium package)")
def test_report_renders_offline_in_chromium(ring_report):
    _, full = ring_report
    result = load_page(full)
    assert result["console_errors"] == [] and result["failed_requests"] == [] and result["external_requests"] == []
    images = result["images"]
    assert len(images) == len(_Page(full.read_text()).images)
    assert all(w > 0 and h > 0 and complete for w, h, complete in images)
    shot = np.asarray(Image.open(io.BytesIO(result["screenshot"])).convert("RGB"))
    assert shot.shape[0] > 2000  # the whole page, not the first screen
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 200 and (shot < 128).any()  # text and plots, not blank
