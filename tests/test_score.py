"""gantools score / stats / train-classifier: results, gates, JSON, and bad input."""

import json

import numpy as np
import pytest
from conftest import assert_usage_error
from PIL import Image

from gantools.data import load_source
from gantools.errors import GanToolsError
from gantools.generate import generate
from gantools.metrics import frechet_distance, mode_metrics
from gantools.metrics.score import GATE_KEYS, score
from gantools.metrics.stats import load_ref_stats, save_ref_stats


def test_model_and_the_folder_it_generates_score_the_same(exported, tmp_path):
    generate(exported["dcgan"], 40, tmp_path / "pngs", seed=3, progress=False)
    kw = dict(
        real="digits",
        metrics=["fid", "kid", "prdc"],
        extractor="raw",
        n_real=300,
        progress=False,
        kid_subsets=5,
        kid_subset_size=30,
    )
    a = score(exported["dcgan"], n=40, seed=3, **kw)
    b = score(tmp_path / "pngs", seed=3, **kw)  # the seed also picks the real subset
    for key in ("fid", "kid_mean", "precision", "recall", "density", "coverage"):
        assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-12), key


def test_raw_fid_equals_the_direct_computation(tmp_path):
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (60, 6, 6), dtype=np.uint8)
    fake = rng.integers(0, 200, (50, 6, 6), dtype=np.uint8)
    np.savez(tmp_path / "real.npz", x=real)
    np.savez(tmp_path / "fake.npz", x=fake)
    got = score(tmp_path / "fake.npz", tmp_path / "real.npz", ["fid"], extractor="raw", progress=False)
    f1, f2 = fake.reshape(50, -1) / 255.0, real.reshape(60, -1) / 255.0
    expected = frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))
    assert got["fid"] == pytest.approx(expected, rel=1e-6)
    assert got["n"] == 50 and got["n_real"] == 60 and got["extractor"] == "raw"


def test_modes_of_an_exported_ring_model(exported, tmp_path):
    got = score(exported["ring"], "ring", ["modes"], n=500, progress=False)
    generate(exported["ring"], 500, tmp_path / "p.npz", progress=False)
    from gantools.data import RING_SIGMA, ring_centers

    expected = mode_metrics(np.load(tmp_path / "p.npz")["x"], ring_centers(), RING_SIGMA)
    assert {k: got[k] for k in expected} == expected
    assert got["extractor"] is None  # no features were needed


def test_real_ring_scores_perfectly_on_modes():
    got = score("ring", "ring", ["modes", "c2st"], n=2500, progress=False)
    assert got["modes"] == 8 and got["hq_fraction"] > 0.99 and got["reverse_kl"] < 0.01
    assert got["c2st_ci_low"] < 0.5 + 0.03


def test_disc_metric_uses_the_discriminator_beside_the_generator(exported):
    got = score(exported["cdcgan"], "digits", ["disc"], n=100, n_real=200, progress=False)
    assert 0.0 <= got["disc_accuracy"] <= 1.0 and 0.0 <= got["disc_auc"] <= 1.0


def test_reference_statistics_round_trip(tmp_path, cli):
    code, out, _ = cli("stats", "grid", "-o", tmp_path / "ref.npz", "-n", "3000", "-q")
    assert code == 0 and "3000 samples" in out
    ref = load_ref_stats(tmp_path / "ref.npz")
    assert ref["extractor"] == "raw" and ref["n"] == 3000 and ref["mu"].shape == (2,)
    direct = score("grid", "grid", ["fid"], n=3000, n_real=5000, progress=False)
    via_ref = score("grid", tmp_path / "ref.npz", ["fid"], n=3000, progress=False)
    assert via_ref["fid"] < 0.05 and direct["fid"] < 0.05
    save_ref_stats(tmp_path / "other.npz", ref["mu"], ref["sigma"], "classifier:abc", "", 10)
    with pytest.raises(GanToolsError, match="classifier:abc"):
        score("grid", tmp_path / "other.npz", ["fid"], progress=False)
    with pytest.raises(GanToolsError, match="need real samples"):
        score("grid", tmp_path / "ref.npz", ["fid", "kid"], progress=False)


def test_damaged_reference_statistics_are_refused_by_score(cli, tmp_path):
    np.savez(tmp_path / "nan.npz", mu=np.array([0.0, np.nan]), sigma=np.eye(2))
    np.savez(tmp_path / "skew.npz", mu=np.zeros(2), sigma=np.array([[1.0, 0.5], [-0.5, 1.0]]))
    assert_usage_error(
        cli("score", "grid", "--real", tmp_path / "nan.npz", "--metrics", "fid", "-q"),
        "nan.npz",
        "NaN or Inf",
        "gantools stats",
    )
    assert_usage_error(
        cli("score", "grid", "--real", tmp_path / "skew.npz", "--metrics", "fid", "-q"), "skew.npz", "not symmetric"
    )


def test_statistics_of_one_precision_are_refused_at_another(cli, tmp_path, monkeypatch):
    save_ref_stats(tmp_path / "fp32.npz", np.zeros(2048), np.eye(2048), "inception-v3-2015-12-05/pool3", "", 10)
    monkeypatch.setenv("GANTOOLS_CACHE", str(tmp_path / "cache"))
    assert_usage_error(
        cli("score", "digits", "--real", tmp_path / "fp32.npz", "-n", "10", "--precision", "fp16", "-q"),
        "fp32.npz",
        "pool3/fp16",
        "--precision",
    )
    assert not (tmp_path / "cache").exists()  # refused before the fp16 model was built
    assert_usage_error(
        cli("score", "ring", "--real", "ring", "--metrics", "fid", "--precision", "fp16", "-q"),
        "--precision fp16 applies to the inception extractor",
        "--extractor raw",
    )


def test_pytorch_fid_style_stats_file_is_read_as_inception(tmp_path):
    np.savez(tmp_path / "pf.npz", mu=np.zeros(3), sigma=np.eye(3))
    ref = load_ref_stats(tmp_path / "pf.npz")
    assert ref["extractor"] is None and ref["n"] is None
    with pytest.raises(GanToolsError, match="inception-v3"):
        score("ring", tmp_path / "pf.npz", ["fid"], progress=False)  # raw features vs an Inception reference


def test_gates_exit_codes_and_json(cli, tmp_path):
    args = ["score", "grid", "--real", "grid", "--metrics", "fid,modes", "-n", "2500", "-q"]
    code, out, _ = cli(
        *args, "--max", "fid=1", "--min", "modes=25", "--json", tmp_path / "ok.json", "--log", tmp_path / "log.jsonl"
    )
    assert code == 0, out
    result = json.loads((tmp_path / "ok.json").read_text())
    assert result["passed"] is True and len(result["gates"]) == 2
    assert {"fid", "modes", "hq_fraction", "reverse_kl", "n", "extractor", "gates", "passed"} <= set(result)
    code, out, _ = cli(
        *args, "--max", "fid=0.000001", "--json", tmp_path / "fail.json", "--log", tmp_path / "log.jsonl"
    )
    assert code == 1 and "FAIL" in out
    assert json.loads((tmp_path / "fail.json").read_text())["passed"] is False
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 2
    assert_usage_error(cli(*args, "--max", "fid"), "METRIC=VALUE")
    assert_usage_error(cli(*args, "--max", "sharpness=3"), "METRIC")
    assert_usage_error(cli(*args, "--min", "precision=0.5"), "prdc")
    assert_usage_error(cli(*args[:-1], "--metrics", "fid,blur"), "blur")


def test_all_json_keys_can_be_produced(tmp_path, exported, digits_classifier):
    images = score(
        exported["cdcgan"],
        "digits",
        ["fid", "kid", "prdc", "disc", "c2st", "classes"],
        n=60,
        n_real=200,
        extractor="raw",
        classifier=digits_classifier,
        kid_subsets=3,
        kid_subset_size=20,
        progress=False,
    )
    points = score("ring", "ring", ["modes"], progress=False)
    copying = score(
        exported["cdcgan"], "digits:test", ["copying"], n=200, train="digits:train", extractor="raw", progress=False
    )
    produced = set(images) | set(points) | set(copying)
    assert set(GATE_KEYS) - {"is_mean", "is_std"} <= produced


def test_bad_inputs(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_usage_error(cli("score", tmp_path / "empty", "--real", "digits", "-q"), "no images")
    (tmp_path / "one").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "one" / "a.png")
    for metric in ("prdc", "kid", "c2st", "fid"):  # one image: refused before any extraction, naming the fix
        assert_usage_error(
            cli("score", tmp_path / "one", "--real", "digits", "--metrics", metric, "--extractor", "raw", "-q"),
            f"--metrics {metric} needs at least",
            "one has 1",
            "-n/--n-real",
        )
    assert_usage_error(cli("score", "ring", "--real", "digits", "-q"), "points")
    assert_usage_error(cli("score", "digits", "--real", "digits", "--metrics", "modes", "-q"), "ring")
    assert_usage_error(cli("score", "digits", "--real", "digits", "--metrics", "disc", "-q"), "--discriminator")
    assert_usage_error(cli("score", "ring", "--real", "ring", "--extractor", "inception", "-q"), "images")
    assert_usage_error(cli("score", "digits", "--real", "digits", "--extractor", "classifier", "-q"), "--classifier")
    assert_usage_error(cli("score", "digits", "--real", "nowhere", "-q"), "nowhere")
    assert_usage_error(
        cli("score", "digits", "--real", "digits", "--extractor", "raw", "--classifier", tmp_path / "clf.onnx", "-q"),
        "--classifier",
        "--extractor classifier",
    )
    assert_usage_error(cli("score", "digits", "--real", "digits", "--metrics", "is", "-q"), "logits")
    assert_usage_error(
        cli("stats", "digits", "-o", tmp_path / "s.npz", "--inception-weights", tmp_path / "x.pth", "-q"), "x.pth"
    )
    assert not (tmp_path / "s.npz").exists()


def test_classifier_extractor_and_domain_inception_score(cli, tmp_path):
    code, out, _ = cli("train-classifier", "--data", "digits", "-o", tmp_path / "clf.onnx", "--epochs", "15", "-q")
    assert code == 0 and "held-out accuracy" in out
    accuracy = float(out.split("held-out accuracy ")[1].split()[0])
    assert accuracy > 0.9
    code, out, _ = cli("info", tmp_path / "clf.onnx", "--json")
    meta = json.loads(out)["metadata"]
    assert code == 0 and meta["role"] == "classifier"
    assert float(meta["heldout_accuracy"]) == pytest.approx(accuracy, abs=1e-4)
    got = score(
        "digits",
        "digits",
        ["is", "fid"],
        extractor="classifier",
        classifier=tmp_path / "clf.onnx",
        n_real=900,
        progress=False,
    )
    assert got["is_mean"] > 7.0 and got["extractor"].startswith("classifier:")
    assert_usage_error(cli("train-classifier", "--data", "ring", "-o", tmp_path / "c.onnx", "-q"), "labelled")


def test_inception_fid_on_a_few_images(tmp_path):
    """The default extractor end to end (few images: FID is biased at n < 2048, and says so)."""
    got = score("digits", "digits", ["fid"], n=12, n_real=12, seed=0, progress=False)
    assert got["extractor"] == "inception-v3-2015-12-05/pool3" and got["fid"] > 0


def test_feature_cache_of_real_data_gives_identical_results(tmp_path, monkeypatch, exported):
    from gantools.classifier import train_classifier

    monkeypatch.setenv("GANTOOLS_CACHE", str(tmp_path / "cache"))
    train_classifier("digits", tmp_path / "clf.onnx", epochs=1, progress=False)
    kw = dict(
        real="digits",
        metrics=["fid", "kid"],
        n=50,
        n_real=400,
        extractor="classifier",
        classifier=tmp_path / "clf.onnx",
        kid_subsets=3,
        kid_subset_size=40,
        progress=False,
    )
    first = score(exported["dcgan"], **kw)
    cached = list((tmp_path / "cache" / "features").glob("*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape == (400, 128)
    second = score(exported["dcgan"], **kw)
    uncached = score(exported["dcgan"], cache=False, **kw)
    for key in ("fid", "kid_mean"):
        assert first[key] == second[key] == uncached[key]
    score(exported["dcgan"], **{**kw, "n_real": 300})  # another subset: another entry
    assert len(list((tmp_path / "cache" / "features").glob("*.npy"))) == 2


def test_a_cached_image_folder_is_not_decoded_again(tmp_path, monkeypatch, exported, digits_classifier):
    """The second pass reads the folder's bytes for the key, never its pixels; a changed file is a new entry."""
    from PIL import Image

    from gantools.data import FolderStream, load_source

    monkeypatch.setenv("GANTOOLS_CACHE", str(tmp_path / "cache"))
    x, _ = load_source("digits").take(120, seed=0)
    for i, im in enumerate(np.rint(x[:, 0] * 255).astype(np.uint8)):
        Image.fromarray(im).save(tmp_path / f"{i:03d}.png")
    kw = dict(
        real=str(tmp_path), metrics=["fid"], n=40, extractor="classifier", classifier=digits_classifier, progress=False
    )
    first = score(exported["dcgan"], **kw)

    def no_decoding(self, idx):
        raise AssertionError("decoded a cached folder")

    with monkeypatch.context() as m:
        m.setattr(FolderStream, "_decode", no_decoding)
        assert score(exported["dcgan"], **kw)["fid"] == first["fid"]
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "007.png")
    changed = score(exported["dcgan"], **kw)
    assert changed["fid"] != first["fid"]
    assert len(list((tmp_path / "cache" / "features").glob("*.npy"))) == 2


def _classify(classifier, x01):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(classifier), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x01.astype(np.float32)})[1].argmax(axis=1)


def test_classes_of_a_conditional_generator_match_an_independent_count(exported, digits_classifier):
    from gantools.latents import labels_for, latents_for
    from gantools.runtime import OnnxGenerator

    got = score(exported["cdcgan"], "digits", ["classes"], n=300, classifier=digits_classifier, progress=False)
    g = OnnxGenerator(exported["cdcgan"], "cpu")
    y = labels_for(0, 300, 10)
    x = g(latents_for(0, 0, 300, g.latent_dim), y)
    fake = _classify(digits_classifier, np.rint(np.clip((x + 1) / 2, 0, 1) * 255) / 255)
    real = _classify(digits_classifier, load_source("digits").take(seed=1)[0])
    gap = np.abs(np.bincount(fake, minlength=10) / 300 - np.bincount(real, minlength=10) / len(real)).max()
    assert got["class_max_dev"] == pytest.approx(gap, abs=1e-12)
    assert got["class_accuracy"] == pytest.approx((fake == y).mean(), abs=1e-12)


def test_classes_of_real_data_against_itself(digits_classifier):
    got = score("digits", "digits", ["classes"], classifier=digits_classifier, progress=False)
    assert got["class_max_dev"] == 0.0
    x, y = load_source("digits").take()
    assert got["class_accuracy"] == pytest.approx((_classify(digits_classifier, x) == y).mean())
    assert got["class_accuracy"] > 0.9


def test_classes_errors(cli, tmp_path, digits_classifier):
    assert_usage_error(cli("score", "digits", "--real", "digits", "--metrics", "classes", "-q"), "--classifier")
    assert_usage_error(
        cli("score", "ring", "--real", "ring", "--metrics", "classes", "--classifier", digits_classifier, "-q"), "modes"
    )
    cli(
        "stats",
        "digits",
        "-o",
        tmp_path / "ref.npz",
        "--extractor",
        "classifier",
        "--classifier",
        digits_classifier,
        "-q",
    )
    assert_usage_error(
        cli(
            "score",
            "digits",
            "--real",
            tmp_path / "ref.npz",
            "--metrics",
            "classes",
            "--extractor",
            "classifier",
            "--classifier",
            digits_classifier,
            "-q",
        ),
        "real samples",
    )


def test_samples_of_another_shape_than_the_real_data(tmp_path, cli, exported):
    """Raw values of different shapes cannot be compared (exit 2); features of different sizes can, with a warning,
    also against reference statistics that recorded the shape they came from."""
    from PIL import Image

    for i in range(6):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            tmp_path / f"{i}.png"
        )
    assert_usage_error(
        cli("score", exported["dcgan"], "-n", 6, "--real", tmp_path, "--metrics", "kid", "--extractor", "raw", "-q"),
        "1x8x8",
        "3x16x16",
    )
    assert cli("stats", tmp_path, "-o", tmp_path / "ref.npz", "-q")[0] == 0
    code, out, err = cli("score", exported["dcgan"], "-n", 6, "--real", tmp_path / "ref.npz", "-q")
    assert code == 0 and "warning" in err and "1x8x8" in err and "3x16x16" in err


def test_scores_do_not_depend_on_the_batch_size_or_repeat(exported, digits_classifier):
    """Same settings, same numbers (bit-identical on a rerun); another --batch-size: within 1e-6."""
    kw = dict(
        real="digits:test",
        metrics=["fid", "kid", "prdc", "c2st"],
        n=200,
        extractor="classifier",
        classifier=digits_classifier,
        cache=False,
        progress=False,
    )
    runs = [score(exported["cdcgan"], batch_size=b, **kw) for b in (64, 64, 7, 200)]
    keys = ["fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage", "c2st_accuracy"]
    assert [runs[0][k] for k in keys] == [runs[1][k] for k in keys]
    for other in runs[2:]:
        for k in keys:
            assert other[k] == pytest.approx(runs[0][k], rel=1e-6, abs=1e-12), k


@pytest.mark.slow
def test_inception_scores_do_not_depend_on_the_batch_size_or_repeat(exported):
    """The same with the Inception network, whose convolutions ONNX Runtime may tile by batch size."""
    kw = dict(real="digits:test", metrics=["fid", "kid", "prdc"], n=48, n_real=48, cache=False, progress=False)
    runs = [score(exported["dcgan"], batch_size=b, **kw) for b in (16, 16, 5, 48)]
    keys = ["fid", "kid_mean", "kid_std", "precision", "recall", "density", "coverage"]
    assert [runs[0][k] for k in keys] == [runs[1][k] for k in keys]
    for other in runs[2:]:
        for k in keys:
            assert other[k] == pytest.approx(runs[0][k], rel=1e-6, abs=1e-12), k
