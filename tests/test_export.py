import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import assert_usage_error, torch_sample_flops

import gantools.export as export_module
from gantools.checkpoint import latest_checkpoint, load_checkpoint
from gantools.errors import GanToolsError
from gantools.export import checkpoint_to_modules, disc_path_for, export_run
from gantools.models import build_models
from gantools.runtime import sample_flops


def _meta(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_generator_file_is_valid_and_self_describing(runs, exported):
    model = onnx.load(str(exported["dcgan"]))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    meta = _meta(exported["dcgan"])
    config = json.loads((runs["dcgan"] / "config.json").read_text())
    assert meta["gantools_format"] == "1" and meta["role"] == "generator"
    assert int(meta["latent_dim"]) == config["latent_dim"]
    assert json.loads(meta["sample_shape"]) == [1, 8, 8]
    assert meta["value_range"] == "[-1, 1]"
    for key in ("num_classes", "data", "model", "loss", "steps", "seed", "gantools_version"):
        assert key in meta
    assert meta["steps"] == "6" and meta["model"] == "dcgan" and meta["data"] == "digits"
    (z,) = model.graph.input
    assert z.name == "z" and z.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.graph.output[0].name == "x"


def test_conditional_export_has_int64_labels_and_disc(exported):
    model = onnx.load(str(exported["cdcgan"]))
    assert [i.name for i in model.graph.input] == ["z", "y"]
    assert model.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    disc = onnx.load(str(disc_path_for(exported["cdcgan"])))
    assert [i.name for i in disc.graph.input] == ["x", "y"]
    meta = _meta(disc_path_for(exported["cdcgan"]))
    assert meta["role"] == "discriminator" and float(meta["decision_threshold"]) == 0.0
    assert json.loads(meta["class_names"]) == [str(d) for d in range(10)]


@pytest.mark.parametrize("name", ["dcgan", "cdcgan", "ring"])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_onnx_matches_torch_at_any_batch_size(runs, exported, name, batch):
    state = load_checkpoint(latest_checkpoint(runs[name]))
    G, D = checkpoint_to_modules(state)
    rng = np.random.default_rng(batch)
    z = rng.standard_normal((batch, state["config"]["latent_dim"])).astype(np.float32)
    y = rng.integers(0, 10, batch) if state["config"]["num_classes"] else None
    feed = {"z": z, **({"y": y} if y is not None else {})}
    got = ort.InferenceSession(str(exported[name]), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    with torch.no_grad():
        ty = None if y is None else torch.from_numpy(y)
        x = G(torch.from_numpy(z), ty)
        logits = D(x, ty).numpy()
    np.testing.assert_allclose(got, x.numpy(), atol=1e-4, rtol=0)
    dfeed = {"x": x.numpy(), **({"y": y} if y is not None else {})}
    disc = ort.InferenceSession(str(disc_path_for(exported[name])), providers=["CPUExecutionProvider"])
    dgot = disc.run(None, dfeed)[0]
    np.testing.assert_allclose(dgot, logits, atol=1e-4, rtol=0)


def test_exported_generator_is_the_ema_one(runs, exported):
    state = load_checkpoint(latest_checkpoint(runs["ring"]))
    z = torch.from_numpy(
        np.random.default_rng(0).standard_normal((64, state["config"]["latent_dim"]), dtype=np.float32)
    )
    trained = {}
    for key in ("generator", "generator_ema"):
        G, _ = build_models(state["config"])
        G.load_state_dict(state[key])
        with torch.no_grad():
            trained[key] = G.eval()(z)
    got = ort.InferenceSession(str(exported["ring"]), providers=["CPUExecutionProvider"]).run(None, {"z": z.numpy()})[0]
    np.testing.assert_allclose(got, trained["generator_ema"].numpy(), atol=1e-5, rtol=0)
    assert np.abs(got - trained["generator"].numpy()).max() > 1e-3


def test_spectral_norm_is_baked_into_the_discriminator(runs):
    state = load_checkpoint(latest_checkpoint(runs["cdcgan"]))
    _, D = checkpoint_to_modules(state)
    assert not any(k.startswith("parametrizations") or ".parametrizations." in k for k in D.state_dict())


def test_failed_parity_leaves_no_file(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "parity", lambda module, path, inputs: 0.5)
    out = tmp_path / "g.onnx"
    with pytest.raises(GanToolsError, match="parity"):
        export_run(runs["ring"], out)
    assert list(tmp_path.iterdir()) == []


def test_export_errors(tmp_path, runs):
    with pytest.raises(GanToolsError, match="no checkpoints"):
        export_run(tmp_path, tmp_path / "g.onnx")
    with pytest.raises(GanToolsError, match=".onnx"):
        export_run(runs["ring"], tmp_path / "g.bin")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(GanToolsError, match="cannot load checkpoint"):
        export_run(bad, tmp_path / "g.onnx")


def test_export_refuses_to_overwrite_without_the_flag(cli, runs, tmp_path):
    out = tmp_path / "g.onnx"
    export_run(runs["ring"], out)
    before = out.read_bytes()
    assert_usage_error(cli("export", runs["ring"], "-o", out), "g.onnx exists", "--overwrite")
    disc_path_for(tmp_path / "h.onnx").write_bytes(b"keep me")  # the discriminator file alone also counts
    with pytest.raises(GanToolsError, match="h.disc.onnx exists"):
        export_run(runs["ring"], tmp_path / "h.onnx")
    assert disc_path_for(tmp_path / "h.onnx").read_bytes() == b"keep me" and not (tmp_path / "h.onnx").exists()
    assert cli("export", runs["ring"], "-o", out, "--overwrite")[0] == 0 and out.read_bytes() == before


def test_export_from_a_checkpoint_file_without_discriminator(runs, tmp_path):
    report = export_run(latest_checkpoint(runs["ring"]), tmp_path / "g.onnx", discriminator=False)
    assert report.discriminator is None and not disc_path_for(tmp_path / "g.onnx").exists()
    assert report.generator_max_abs_diff <= 1e-4


def _conv_model(cout, cin, kernel, bias=True, **attrs):
    """One Conv node over x [batch, cin, h, w] with random weights; the weights too."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(cout * 100 + cin)
    w = rng.standard_normal((cout, cin, *kernel)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) if bias else None
    inits = [numpy_helper.from_array(w, "w")] + ([numpy_helper.from_array(b, "b")] if bias else [])
    node = helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["y"], kernel_shape=list(kernel), **attrs)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", cin, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", cout, "h2", "w2"])
    graph = helper.make_graph([node], "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), w, b


@pytest.mark.parametrize(
    "cout, cin, kernel, pads, bias",
    [
        (1, 48, (3, 3), [1, 1, 1, 1], True),  # the DCGANs' image layer
        (3, 64, (3, 3), [1, 1, 1, 1], True),  # an RGB one
        (1, 40, (5, 5), [2, 2, 2, 2], False),
        (2, 16, (3, 1), [0, 0, 2, 0], True),  # a tall kernel, uneven padding
        (7, 20, (3, 3), [0, 0, 0, 0], True),
    ],
)
def test_split_narrow_convs_computes_the_convolution(cout, cin, kernel, pads, bias):
    """The rewritten graph through ONNX Runtime against PyTorch's conv2d of the same weights."""
    model, w, b = _conv_model(cout, cin, kernel, bias, pads=pads)
    assert export_module.split_narrow_convs(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["Reshape", "MatMul", "Shape", "Concat", "Reshape", "ConvTranspose"]
    assert {t.name for t in model.graph.initializer} & {"w"} == set()  # the original kernel is gone
    x = np.random.default_rng(0).standard_normal((5, cin, 9, 7)).astype(np.float32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    top, left, bottom, right = pads[0], pads[1], pads[2], pads[3]
    padded = torch.nn.functional.pad(torch.from_numpy(x).double(), (left, right, top, bottom))
    conv = torch.nn.functional.conv2d
    want = conv(padded, torch.from_numpy(w).double(), None if b is None else torch.from_numpy(b).double()).numpy()
    # fp32 sums of cin*k*k products, in an order that differs by CPU: bound the error by the sum of |products|
    magnitude = conv(padded.abs(), torch.from_numpy(np.abs(w)).double()).numpy()
    magnitude += 0 if b is None else np.abs(b)[:, None, None]
    assert np.all(np.abs(got - want) <= 1e-5 * magnitude)


@pytest.mark.parametrize(
    "cout, cin, kernel, attrs",
    [
        (8, 48, (3, 3), {}),  # a full block of outputs
        (1, 48, (1, 1), {}),  # one tap
        (1, 9, (3, 3), {}),  # no more inputs than taps (a first layer)
        (1, 48, (3, 3), {"strides": [2, 2]}),
        (1, 48, (3, 3), {"dilations": [2, 2]}),
        (2, 48, (3, 3), {"group": 2}),
        (1, 48, (3, 3), {"auto_pad": "SAME_UPPER"}),
        (1, 48, (3, 1), {"pads": [1, 1, 1, 1]}),  # padding as wide as the kernel: no transposed convolution sums it
    ],
)
def test_split_narrow_convs_leaves_other_convolutions(cout, cin, kernel, attrs):
    model, _, _ = _conv_model(cout, cin // attrs.get("group", 1), kernel, **attrs)
    before = model.SerializeToString()
    assert export_module.split_narrow_convs(model) == 0
    assert model.SerializeToString() == before


def test_export_splits_the_dcgan_image_layer(tmp_path):
    """At the recipe's width, export splits the DCGAN's width -> 1 image layer into a product and a sum, and the
    file still passes the parity check against PyTorch (export_run raises otherwise)."""
    from gantools.recipes import RECIPES
    from gantools.train import train

    w = RECIPES[("digits", "dcgan")]["width"]

    train(tmp_path / "run", data="digits", model="dcgan", steps=1, progress=False)
    report = export_run(tmp_path / "run", tmp_path / "g.onnx", discriminator=False)
    assert report.generator_max_abs_diff <= export_module.PARITY_TOLERANCE
    model = onnx.load(str(tmp_path / "g.onnx"))
    kernels = {t.name: list(t.dims) for t in model.graph.initializer}
    products = [
        (n.op_type, kernels.get(n.input[0]) or kernels.get(n.input[1]))
        for n in model.graph.node
        if n.op_type in ("Conv", "MatMul", "ConvTranspose")
    ]
    assert products == [("ConvTranspose", [2 * w, w, 4, 4]), ("MatMul", [9, w]), ("ConvTranspose", [9, 1, 3, 3])]
    # the file's arithmetic: the module's, plus the one-hot sum's 3 x 3 multiply-adds per tap plane value
    assert sample_flops(tmp_path / "g.onnx") == torch_sample_flops(tmp_path / "run") + 2 * (9 * 8 * 8) * 9
