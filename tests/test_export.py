import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import assert_usage_error
import torch

import gantools.export as export_module
from gantools.checkpoint import latest_checkpoint, load_checkpoint
from gantools.errors import GanToolsError
from gantools.export import checkpoint_to_modules, disc_path_for, export_run
from gantools.models import build_models


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
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((64, state["config"]["latent_dim"]),
                                                                   dtype=np.float32))
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
