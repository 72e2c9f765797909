"""ONNX export: a model using mx_dcn becomes a graph with the standard `DeformConv` node (opset 19).

    import mx_dcn.onnx
    mx_dcn.onnx.export(model, (x,), "model.onnx")          # torch.onnx.export(..., dynamo=True)

or, with your own torch.onnx.export call:

    torch.onnx.export(model, (x,), "model.onnx", dynamo=True, opset_version=19,
                      custom_translation_table=mx_dcn.onnx.translation_table())
    # inside `with mx_dcn.use_backend("cpu"):` -- see below

How: every native backend runs the registered op `torch.ops.mx_dcn.deform_conv2d`; the exporter
(torch.export, then translation) keeps it as one node, and `translation_table()` maps it to
`DeformConv(X, W, offset, B, mask)` with strides, pads [top, left, bottom, right] = [ph, pw, ph, pw],
dilations, group and offset_group. The offset/mask layout is mx_dcn's canonical one, which is ONNX's.

The portable backend (pure torch ops) would export as a graph of gathers and matmuls, not DeformConv.
`export` therefore forces the native backend of the example inputs' device ("cpu" or "cuda") while
tracing, and raises if it is not built. onnx and onnxscript are needed only here (test extras).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from . import registry

OPSET = 19  # DeformConv entered the standard domain in opset 19

__all__ = ["OPSET", "translation_table", "export", "native_backend_for"]


def _deform_conv(input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
    """ONNX translation of mx_dcn::deform_conv2d (called by the exporter with onnxscript values)."""
    from onnxscript import opset19 as op

    ph, pw = int(padding[0]), int(padding[1])
    return op.DeformConv(input, weight, offset, bias, mask,
                         dilations=[int(dilation[0]), int(dilation[1])], group=int(groups),
                         offset_group=int(deformable_groups), pads=[ph, pw, ph, pw],
                         strides=[int(stride[0]), int(stride[1])])


def _require_op() -> None:
    from . import ops
    error = ops.load_error()
    if error is not None:
        raise RuntimeError("mx_dcn ONNX export needs the native op torch.ops.mx_dcn.deform_conv2d: " + error)


def translation_table() -> Dict[Any, Any]:
    """`custom_translation_table` for `torch.onnx.export(..., dynamo=True)`: mx_dcn's op -> DeformConv."""
    _require_op()
    return {torch.ops.mx_dcn.deform_conv2d.default: _deform_conv}


def native_backend_for(args) -> str:
    """The native backend ('cpu' or 'cuda') for the device of the first tensor in `args`."""
    tensors = [a for a in (args if isinstance(args, (tuple, list)) else (args,)) if isinstance(a, torch.Tensor)]
    device = tensors[0].device.type if tensors else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"args: ONNX export traces on 'cpu' or 'cuda' tensors, got device {device!r}")
    return device


def export(model: torch.nn.Module, args, f: Optional[str] = None, *, opset_version: int = OPSET,
           custom_translation_table: Optional[Dict[Any, Any]] = None, **kwargs):
    """`torch.onnx.export(model, args, f, dynamo=True, ...)` with mx_dcn's layers exported as
    `DeformConv`. Forces the native backend of `args`' device while tracing (never the portable
    one). Other keyword arguments go to torch.onnx.export. Returns its ONNXProgram."""
    if opset_version < OPSET:
        raise ValueError(f"opset_version: DeformConv needs opset >= {OPSET}, got {opset_version}")
    if kwargs.get("dynamo") is False:
        raise ValueError("dynamo: mx_dcn exports through the dynamo-based exporter (dynamo=True) only")
    kwargs.pop("dynamo", None)
    table = translation_table()
    if custom_translation_table:
        table.update(custom_translation_table)
    backend = native_backend_for(args)
    availability = registry.get_backend(backend).available()
    if not availability:
        raise RuntimeError(f"mx_dcn ONNX export needs the '{backend}' backend: {availability.reason}")
    args = args if isinstance(args, tuple) else (args,)
    with registry.use_backend(backend):
        return torch.onnx.export(model, args, f, dynamo=True, opset_version=opset_version,
                                 custom_translation_table=table, **kwargs)
