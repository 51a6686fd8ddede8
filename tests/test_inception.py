"""The FID Inception network: our module vs the TorchScript original, ONNX vs PyTorch, FID vs a reference."""

import copy
import json
import os
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from conftest import assert_usage_error
from PIL import Image

from gantools.errors import GanToolsError
from gantools.metrics import features
from gantools.metrics.features import (
    INCEPTION_ID,
    OnnxExtractor,
    TorchBf16Extractor,
    inception_module,
    inception_onnx_path,
    make_extractor,
)
from gantools.metrics.inception import (
    FIDInception,
    FusedConvReLU,
    fold_batchnorms,
    fuse_conv_relus,
    load_inception,
    onednn_fuses,
)
from gantools.metrics.weights import FID_HELPER_SHA256, resolve_weights


@pytest.fixture(scope="module")
def weights():
    return resolve_weights()[0]


@pytest.fixture(scope="module")
def torchscript(weights):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(weights), map_location="cpu").eval()


@pytest.fixture(scope="module")
def ours(weights):
    return load_inception(weights)


def _pytorch_fid_input(x):
    """pytorch-fid's preprocessing, written out: bilinear 299x299 (align_corners=False), then 2x - 1."""
    return 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1


def test_our_module_matches_the_torchscript_network(ours, torchscript):
    x = torch.rand(2, 3, 40, 33, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = ours(x)
        expected = torchscript(_pytorch_fid_input(x))
    assert got.shape == (2, 2048)
    assert (got - expected).abs().max().item() <= 1e-4


def test_onnx_extractor_matches_pytorch(ours):
    path, sha = inception_onnx_path()
    ex = OnnxExtractor(path, INCEPTION_ID, sha, channels=3, device="cpu")
    rng = np.random.default_rng(1)
    for shape in [(3, 3, 299, 299), (2, 1, 8, 8)]:
        x = rng.random(shape, dtype=np.float32)
        features, logits = ex(x)
        with torch.no_grad():
            expected = ours(torch.from_numpy(np.repeat(x, 3 // shape[1], axis=1))).numpy()
        assert logits is None
        assert np.abs(features - expected).max() <= 1e-4


def test_fp16_extractor_is_the_network_in_half_precision_with_its_own_id(ours):
    fp32 = make_extractor("inception", kind="image", device="cpu")
    fp16 = make_extractor("inception", kind="image", device="cpu", precision="fp16")
    assert fp32.id == INCEPTION_ID and fp16.id == INCEPTION_ID + "/fp16"  # never mixed in caches or stats files
    x = np.random.default_rng(2).random((4, 3, 48, 48), dtype=np.float32)
    with torch.no_grad():
        expected = ours(torch.from_numpy(x)).numpy()
    got = fp16(x)[0]
    assert got.dtype == np.float32 and got.shape == (4, 2048)
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert 1e-5 < error < 2e-2  # rounded as fp16 rounds (11-bit mantissa), not fp32 relabelled
    assert np.abs(fp32(x)[0] - expected).max() <= 1e-4


def test_a_pytorch_that_cannot_run_half_precision_gives_one_line_and_caches_nothing(cli, tmp_path, monkeypatch):
    from gantools.metrics import inception

    def no_half(self, x):
        raise RuntimeError("\"slow_conv2d_cpu\" not implemented for 'Half'")

    monkeypatch.setattr(inception.ReducedInception, "forward", no_half)
    monkeypatch.setenv("GANTOOLS_CACHE", str(tmp_path / "cache"))
    code, out, err = cli("stats", "digits", "-n", "10", "-o", tmp_path / "s.npz", "--precision", "fp16", "-q")
    notice, error = err.strip().splitlines()  # "building the fp16 Inception ONNX model once", then the error
    assert code == 2 and out == "" and "building the fp16" in notice
    assert error.startswith("gantools: error: --precision fp16:") and "slow_conv2d_cpu" in error
    assert error.endswith("upgrade torch, or use --precision fp32")
    assert not (tmp_path / "s.npz").exists()
    assert not list((tmp_path / "cache").glob("*.onnx"))


def test_reduced_precision_is_refused_for_other_extractors():
    for precision in ("fp16", "bf16"):
        with pytest.raises(GanToolsError, match=f"--precision {precision} applies to the inception extractor"):
            make_extractor("raw", kind="points", precision=precision)
    with pytest.raises(GanToolsError, match="--precision must be one of fp32, fp16, bf16"):
        make_extractor("inception", kind="image", precision="int8")


def test_folded_batchnorms_compute_the_same_network(ours):
    x = torch.from_numpy(np.random.default_rng(3).random((2, 3, 40, 40), dtype=np.float32))
    folded = fold_batchnorms(inception_module()[0])
    assert not [m for m in folded.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        expected, got = ours(x), folded(x)
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_conv_relus_compute_conv_then_relu_bit_for_bit(dtype):
    """Where oneDNN fuses this dtype, every unit is one fused op giving conv-then-relu's exact values;
    elsewhere (bf16 on a CPU without AVX-512) the network is left unfused."""
    folded = fold_batchnorms(inception_module()[0]).to(dtype)
    fused = fuse_conv_relus(copy.deepcopy(folded), dtype)
    units = [m for m in fused.modules() if isinstance(m, FusedConvReLU)]
    assert len(units) == (94 if onednn_fuses(dtype) else 0)
    x = torch.from_numpy(np.random.default_rng(4).random((2, 3, 75, 75), dtype=np.float32))
    with torch.inference_mode():
        assert torch.equal(fused.body(folded.prepare(x).to(dtype)), folded.body(folded.prepare(x).to(dtype)))
    if onednn_fuses(dtype):
        with pytest.raises(ValueError, match="fold the BatchNorms first"):
            fuse_conv_relus(inception_module()[0], dtype)


def test_bf16_extractor_is_the_network_in_bfloat16_with_its_own_id(ours):
    bf16 = TorchBf16Extractor(*inception_module())
    assert bf16.id == INCEPTION_ID + "/bf16"  # never mixed with fp32's or fp16's features
    x = np.random.default_rng(2).random((3, 3, 48, 48), dtype=np.float32)
    with torch.no_grad():
        expected = ours(torch.from_numpy(x)).numpy()
    got, logits = bf16(x)
    assert logits is None and got.dtype == np.float32 and got.shape == (3, 2048)
    error = np.abs(got - expected).max() / np.abs(expected).max()
    assert 2e-3 < error < 5e-2  # rounded as bf16 rounds (8-bit mantissa): coarser than fp16, not fp32 relabelled
    gray = x[:, :1]
    assert np.array_equal(bf16(gray)[0], bf16(np.repeat(gray, 3, axis=1))[0])  # grayscale as RGB
    many = np.random.default_rng(5).random((17, 3, 32, 32), dtype=np.float32)
    bf16.CHUNK = 100
    whole = bf16(many)[0]
    bf16.CHUNK = 7  # 7 + 7 + 3, in order
    chunked = bf16(many)[0]
    assert chunked.shape == (17, 2048) and np.abs(chunked - whole).max() < 1e-2 * np.abs(whole).max()


def test_bf16_is_refused_where_it_would_not_pay(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(features, "cpu_has_bf16", lambda: False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr("gantools.threads.busy_cores", lambda: 1.0)
    assert_usage_error(
        cli("stats", "digits", "-n", "10", "-o", tmp_path / "s.npz", "--precision", "bf16", "-q"),
        "--precision bf16 needs a CPU with bf16 arithmetic",
        "AVX512-BF16",
        "leave --precision at fp32",
    )
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"  # chosen before torch would run the Inception
    monkeypatch.setattr(features, "cpu_has_bf16", lambda: True)
    assert_usage_error(
        cli("score", "digits", "--real", "digits", "-n", "10", "--precision", "bf16", "--device", "cuda", "-q"),
        "--precision bf16 runs on the CPU",
        "--precision fp16",
    )
    assert not (tmp_path / "s.npz").exists()


def test_bf16_statistics_and_scores_through_the_cli_where_the_cpu_has_it(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(features, "cpu_has_bf16", lambda: True)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # this process's libgomp has started: the value is unused
    monkeypatch.setenv("GANTOOLS_CACHE", str(tmp_path / "cache"))
    code, out, err = cli("stats", "digits:test", "-n", "6", "-o", tmp_path / "ref.npz", "--precision", "bf16", "-q")
    assert code == 0 and "inception-v3-2015-12-05/pool3/bf16" in out, err
    code, out, err = cli(
        "score",
        "digits:train",
        "--real",
        tmp_path / "ref.npz",
        "-n",
        "6",
        "--precision",
        "bf16",
        "--json",
        tmp_path / "r.json",
        "-q",
    )
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["extractor"] == INCEPTION_ID + "/bf16" and np.isfinite(result["fid"]) and result["fid"] > 0
    assert_usage_error(
        cli("score", "digits:train", "--real", tmp_path / "ref.npz", "-n", "6", "-q"),
        "ref.npz",
        "pool3/bf16",
        "--precision",
    )  # fp32 features never meet bf16 statistics


def test_pytorch_fid_style_weights_with_logits_head(ours, tmp_path, monkeypatch):
    """A .pth in pytorch-fid / torch-fidelity naming, with the 1008-class head, gives logits = pool3 @ W^T."""
    state = dict(ours.state_dict())
    state["fc.weight"] = torch.randn(1008, 2048, generator=torch.Generator().manual_seed(0)) * 0.01
    state["fc.bias"] = torch.full((1008,), 5.0)  # must not enter the "unbiased" logits
    for name in [k for k in state if k.endswith("running_var")]:
        state[name.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    pth = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, pth)
    model = load_inception(pth)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        features, logits = model(x)
    torch.testing.assert_close(logits, features @ state["fc.weight"].T)
    monkeypatch.setenv("GANTOOLS_INCEPTION_WEIGHTS", str(pth))
    ex = make_extractor("inception", kind="image", device="cpu")
    assert ex.has_logits and ex.weights_sha256 != FID_HELPER_SHA256
    _, onnx_logits = ex(x.numpy())
    assert np.abs(onnx_logits - logits.numpy()).max() <= 1e-3


def test_weights_errors(tmp_path, monkeypatch):
    with pytest.raises(GanToolsError, match="no Inception weights file"):
        resolve_weights(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(GanToolsError, match="not FID Inception-v3 weights"):
        load_inception(bad)
    monkeypatch.setenv("GANTOOLS_INCEPTION_WEIGHTS", str(tmp_path / "nope.pth"))
    with pytest.raises(GanToolsError, match="GANTOOLS_INCEPTION_WEIGHTS"):
        resolve_weights()


def test_module_without_head_has_no_fc():
    assert not hasattr(FIDInception(with_logits=False), "fc")


def _write_folder(folder, images):
    folder.mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"{i:04d}.png")


def _reference_fid(folder_a, folder_b, torchscript):
    """pytorch-fid's recipe, independently: PIL RGB -> [0, 1] -> bilinear 299 -> 2x-1 -> network; scipy sqrtm."""

    def features(folder):
        out = []
        for path in sorted(folder.glob("*.png")):
            x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0)
            with torch.no_grad():
                out.append(torchscript(_pytorch_fid_input(x.permute(2, 0, 1)[None])).numpy()[0])
        return np.array(out, dtype=np.float64)

    fa, fb = features(folder_a), features(folder_b)
    mu1, mu2 = fa.mean(0), fb.mean(0)
    s1, s2 = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(s1)) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


@pytest.mark.slow
def test_fid_of_two_folders_agrees_with_an_independent_computation(tmp_path, torchscript, cli):
    import json

    from gantools.data import load_source

    x, _ = load_source("digits", image_size=32).take(240, seed=0)
    pixels = np.rint(x[:, 0] * 255).astype(np.uint8)
    rng = np.random.default_rng(0)
    noisy = np.clip(pixels[120:].astype(int) + rng.integers(-40, 41, pixels[120:].shape), 0, 255).astype(np.uint8)
    _write_folder(tmp_path / "a", pixels[:120])
    _write_folder(tmp_path / "b", noisy)
    code, _, _ = cli("score", tmp_path / "b", "--real", tmp_path / "a", "--json", tmp_path / "r.json", "-q")
    ours = json.loads((tmp_path / "r.json").read_text())["fid"]
    reference = _reference_fid(tmp_path / "b", tmp_path / "a", torchscript)
    assert code == 0
    assert ours == pytest.approx(reference, rel=1e-3)
