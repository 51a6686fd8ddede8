"""Checkpoint -> ONNX: the (EMA) generator and the discriminator, self-describing and verified.

Each file carries its metadata in `metadata_props` (latent size, classes,
sample shape, value range, training provenance) so that `generate`, `info`
and `score` need nothing but the file. After writing, the same inputs run
through PyTorch and ONNX Runtime; a difference above the tolerance fails the
export and leaves no file behind.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import GanToolsError
from .files import atomic_path, remove_stale_temporaries
from .runtime import FORMAT_VERSION

OPSET = 17
PARITY_TOLERANCE = 1e-4
PARITY_BATCH = 7  # differs from the export's dummy batch, so the dynamic axis is exercised


@dataclass
class ExportReport:
    generator: Path
    discriminator: Path | None
    generator_max_abs_diff: float
    discriminator_max_abs_diff: float | None


def disc_path_for(generator_path) -> Path:
    """NAME.onnx -> NAME.disc.onnx."""
    p = Path(generator_path)
    return p.with_name(p.name[: -len(".onnx")] + ".disc.onnx" if p.name.endswith(".onnx") else p.name + ".disc.onnx")


def _checkpoint_for(source) -> Path:
    from .checkpoint import latest_checkpoint

    source = Path(source)
    if source.is_dir():
        return latest_checkpoint(source)
    if source.is_file():
        return source
    raise GanToolsError(f"no run directory or checkpoint at {source}")


def checkpoint_to_modules(state: dict):
    """(generator for export, discriminator for export) in eval mode, spectral norm baked in and point
    standardisation folded into the Linear layers."""
    import torch
    from torch.nn.utils import parametrize

    from .models import build_models, fold_fixed_affines

    config = state["config"]
    G, D = build_models(config)
    G.load_state_dict(state["generator_ema"] if config["ema"] > 0 else state["generator"])
    D.load_state_dict(state["discriminator"])
    for module in D.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    G.eval().requires_grad_(False)
    D.eval().requires_grad_(False)
    fold_fixed_affines(G)
    fold_fixed_affines(D)
    return G.to(torch.float32), D.to(torch.float32)


def _metadata(state: dict, role: str) -> dict:
    from . import __version__

    c = state["config"]
    meta = {
        "gantools_format": FORMAT_VERSION,
        "role": role,
        "kind": c["kind"],
        "latent_dim": c["latent_dim"],
        "num_classes": c["num_classes"],
        "class_names": json.dumps(c["class_names"]),
        "sample_shape": json.dumps(c["sample_shape"]),
        "value_range": "[-1, 1]" if c["kind"] == "image" else "data coordinates (unbounded)",
        "data": c["data"],
        "image_size": c["image_size"] or "",
        "model": c["model"],
        "loss": c["loss"],
        "conditional": c["conditional"],
        "spectral_norm": c["spectral_norm"],
        "ema": c["ema"],
        "mixture": c.get("mixture") or 0,  # components picked by z[:, 0]: what a latent walk must keep or cross
        "steps": state["step"],
        "seed": c["seed"],
        "gantools_version": __version__,
    }
    if role == "discriminator":
        # ns and hinge logits say "real" above 0; a WGAN critic has no threshold of its
        # own, so take the midpoint of its running mean scores on real and fake batches.
        s = state["d_stats"]
        meta["decision_threshold"] = 0.5 * (s["real"] + s["fake"]) if c["loss"] == "wgan-gp" else 0.0
    return meta


def module_to_onnx(
    module, example, input_names, output_names, path: Path, metadata: dict, dynamic_axes: dict | None = None
) -> None:
    """Export `module` to `path` (opset 17, dynamic batch axis), split its narrow convolutions, stamp metadata,
    run onnx.checker."""
    import onnx
    import torch

    dynamic = dynamic_axes or {name: {0: "batch"} for name in [*input_names, *output_names]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            tuple(example),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    model = onnx.load(str(path))
    split_narrow_convs(model)
    model.producer_name = "gantools"
    del model.metadata_props[:]
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


NARROW_CHANNELS = 8  # a convolution with fewer output channels than this is split (MLAS works in blocks of 8)


def split_narrow_convs(model) -> int:
    """Rewrite each k x k convolution with fewer than NARROW_CHANNELS outputs (stride 1, no dilation or
    groups, constant weights, more inputs than taps, pads under k) as one matrix product onto Cout * k * k
    rows, one per output and tap, over each image's pixels, and a grouped transposed convolution whose
    one-hot kernel adds each output's tap planes at their offsets: the same products, added in another
    order (about 1e-6 apart in float32). ONNX Runtime's CPU kernels run a convolution onto one channel as a
    matrix-vector product per image; the product here has Cout * k * k rows and needs no layout reorder, and
    the sum is a col2im, faster than the convolution and than a 1 x 1 and a one-hot convolution
    (bench/generate_speed.py measures the generators that use it). Every op here has a CUDA kernel in ONNX
    Runtime (its Col2Im has none). Returns how many were rewritten."""
    from onnx import helper, numpy_helper

    from .models import tap_sum_kernel

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    replaced, count = set(), 0
    for node in list(graph.node):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        w = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if w is None or len(w.dims) != 4 or attrs.get("group", 1) != 1 or attrs.get("auto_pad", b"NOTSET") != b"NOTSET":
            continue
        cout, cin, kh, kw = w.dims
        pads = list(attrs.get("pads", [0] * 4))
        if (
            cout >= NARROW_CHANNELS
            or kh * kw == 1
            or cin <= kh * kw
            or any(v != 1 for v in [*attrs.get("strides", []), *attrs.get("dilations", [])])
            or any(p >= k for p, k in zip(pads, [kh, kw, kh, kw], strict=True))
        ):
            continue
        kernel = numpy_helper.to_array(w)
        taps = kernel.transpose(0, 2, 3, 1).reshape(cout * kh * kw, cin)  # row o*kh*kw + i*kw + j
        # a convolution gathers tap (i, j) from input pixel p + (i, j) - pad; a transposed convolution scatters
        # input pixel p to p + (i', j') - pad', so it takes the flipped one-hot and pads k - 1 - pad
        one_hot = tap_sum_kernel(cout, kh, kw).flip(-2, -1).reshape(cout * kh * kw, 1, kh, kw)
        name = f"{node.name or node.output[0]}/split"
        graph.initializer.extend(
            [
                numpy_helper.from_array(taps, f"{name}/taps"),
                numpy_helper.from_array(one_hot.numpy().astype(kernel.dtype), f"{name}/sum"),
                numpy_helper.from_array(np.array([0, cin, -1], np.int64), f"{name}/pixels_shape"),
                numpy_helper.from_array(np.array([0, cout * kh * kw], np.int64), f"{name}/planes"),
            ]
        )
        x = node.input[0]
        rewritten = [
            helper.make_node("Reshape", [x, f"{name}/pixels_shape"], [f"{name}/pixels"], name=f"{name}/pixels"),
            helper.make_node("MatMul", [f"{name}/taps", f"{name}/pixels"], [f"{name}/tap_rows"], name=f"{name}/taps"),
            helper.make_node("Shape", [x], [f"{name}/hw"], name=f"{name}/hw", start=2),
            helper.make_node(
                "Concat",
                [f"{name}/planes", f"{name}/hw"],
                [f"{name}/planes_shape"],
                name=f"{name}/planes_shape",
                axis=0,
            ),
            helper.make_node(
                "Reshape",
                [f"{name}/tap_rows", f"{name}/planes_shape"],
                [f"{name}/tap_planes"],
                name=f"{name}/tap_planes",
            ),
            helper.make_node(
                "ConvTranspose",
                [f"{name}/tap_planes", f"{name}/sum", *node.input[2:]],
                list(node.output),
                name=f"{name}/sum",
                kernel_shape=[kh, kw],
                group=cout,
                pads=[k - 1 - p for p, k in zip(pads, [kh, kw, kh, kw], strict=True)],
            ),
        ]
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for new_node in reversed(rewritten):
            graph.node.insert(at, new_node)
        replaced.add(w.name)
        count += 1
    used = {i for n in graph.node for i in n.input}
    for name in replaced - used:
        graph.initializer.remove(weights[name])  # a split convolution's own kernel, used by nothing else
    return count


def parity(module, path: Path, inputs: dict) -> float:
    """Max |torch - onnxruntime| over every output, on the same inputs."""
    import torch

    from .runtime import open_session

    with torch.no_grad():
        expected = module(*[torch.from_numpy(v) for v in inputs.values()])
    expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
    got = open_session(path, "cpu", trusted=True).run(None, inputs)  # the file just exported
    if [g.shape for g in got] != [e.shape for e in expected]:
        return float("inf")
    return max(
        float(np.max(np.abs(g.astype(np.float64) - e.astype(np.float64)))) for g, e in zip(got, expected, strict=True)
    )


def export_run(
    source, out, *, discriminator: bool = True, tolerance: float = PARITY_TOLERANCE, overwrite: bool = False
) -> ExportReport:
    """Export the newest checkpoint of run directory `source` (or a checkpoint file) to `out`."""
    import torch

    from .checkpoint import checkpoint_fits, load_checkpoint
    from .latents import labels_for, latents_for

    out = Path(out)
    if not out.name.endswith(".onnx"):
        raise GanToolsError(f"-o must name an .onnx file, got {out}")
    existing = [p for p in (out, disc_path_for(out) if discriminator else None) if p is not None and p.exists()]
    if existing and not overwrite:
        raise GanToolsError(f"{existing[0]} exists; pass --overwrite to replace it, or choose another -o")
    for target in (out, disc_path_for(out)):
        remove_stale_temporaries(target)  # what a killed export left
    path = _checkpoint_for(source)
    state = load_checkpoint(path)
    with checkpoint_fits(path):
        config = state["config"]
        G, D = checkpoint_to_modules(state)
        z = latents_for(config["seed"], 0, PARITY_BATCH, config["latent_dim"])
        y = labels_for(0, PARITY_BATCH, config["num_classes"])
    extra = {"y": y} if y is not None else {}
    targets = [("generator", G, out, {"z": z, **extra}, "x")]
    if discriminator:
        with torch.no_grad():
            x = G(torch.from_numpy(z), None if y is None else torch.from_numpy(y)).numpy()
        targets.append(("discriminator", D, disc_path_for(out), {"x": x, **extra}, "logit"))
    diffs = {}
    with contextlib.ExitStack() as stack:  # publish both files only when both pass
        for role, module, path, inputs, output_name in targets:
            tmp = stack.enter_context(atomic_path(path))
            example = [torch.from_numpy(v[:2]) for v in inputs.values()]
            module_to_onnx(module, example, list(inputs), [output_name], tmp, _metadata(state, role))
            diffs[role] = parity(module, tmp, inputs)
            if not diffs[role] <= tolerance:
                raise GanToolsError(
                    f"export parity check failed for the {role}: max |torch - onnxruntime| = "
                    f"{diffs[role]:.3g} > {tolerance:g}; no file written"
                )
    return ExportReport(
        out, disc_path_for(out) if discriminator else None, diffs["generator"], diffs.get("discriminator")
    )
