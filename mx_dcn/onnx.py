"""ONNX export: a model using mx_dcn becomes a graph with the standard `DeformConv` node (opset 19).

    import mx_dcn.onnx
    mx_dcn.onnx.export(model, (x,), "model.onnx")          # torch.onnx.export(..., dynamo=True)

The TorchScript-based exporter works too: `mx_dcn.onnx.export(..., dynamo=False)`, or call
`mx_dcn.onnx.register_torchscript_symbolic()` once before your own `torch.onnx.export(..., dynamo=False,
opset_version=19)` (inside `with mx_dcn.use_backend("cpu"):`).

Or, with your own dynamo-based torch.onnx.export call:

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

__all__ = ["OPSET", "translation_table", "register_torchscript_symbolic", "export", "native_backend_for"]


def _deform_conv(input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
    """ONNX translation of mx_dcn::deform_conv2d (called by the exporter with onnxscript values)."""
    from onnxscript import opset19 as op

    ph, pw = int(padding[0]), int(padding[1])
    return op.DeformConv(input, weight, offset, bias, mask,
                         dilations=[int(dilation[0]), int(dilation[1])], group=int(groups),
                         offset_group=int(deformable_groups), pads=[ph, pw, ph, pw],
                         strides=[int(stride[0]), int(stride[1])])


def _symbolic(g, input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
    """TorchScript-exporter symbolic of mx_dcn::deform_conv2d: the same DeformConv node."""
    from torch.onnx import symbolic_helper as sh

    stride = sh._get_const(stride, "is", "stride")
    padding = sh._get_const(padding, "is", "padding")
    dilation = sh._get_const(dilation, "is", "dilation")
    inputs = [input, weight, offset]
    has_mask = not sh._is_none(mask)
    if not sh._is_none(bias):
        inputs.append(bias)
    elif has_mask:  # B is absent but mask follows it: an empty input name
        inputs.append(sh._optional_input_placeholder_tensor(g))
    if has_mask:
        inputs.append(mask)
    ph, pw = int(padding[0]), int(padding[1])
    return g.op("DeformConv", *inputs, strides_i=[int(v) for v in stride], pads_i=[ph, pw, ph, pw],
                dilations_i=[int(v) for v in dilation], group_i=sh._get_const(groups, "i", "groups"),
                offset_group_i=sh._get_const(deformable_groups, "i", "deformable_groups"))


_symbolic_registered = False


def register_torchscript_symbolic() -> None:
    """Teach the TorchScript-based exporter (torch.onnx.export(..., dynamo=False)) mx_dcn's op."""
    global _symbolic_registered
    _require_op()
    if not _symbolic_registered:
        torch.onnx.register_custom_op_symbolic("mx_dcn::deform_conv2d", _symbolic, OPSET)
        _symbolic_registered = True


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
           dynamo: bool = True, custom_translation_table: Optional[Dict[Any, Any]] = None, **kwargs):
    """`torch.onnx.export(model, args, f, ...)` with mx_dcn's layers exported as `DeformConv`.

    Forces the native backend of `args`' device while tracing (never the portable one). With
    dynamo=True (the default) mx_dcn's translation table is added to `custom_translation_table` and
    the ONNXProgram is returned; with dynamo=False the TorchScript symbolic is registered and `f` is
    required. Other keyword arguments go to torch.onnx.export."""
    if opset_version < OPSET:
        raise ValueError(f"opset_version: DeformConv needs opset >= {OPSET}, got {opset_version}")
    backend = native_backend_for(args)
    availability = registry.get_backend(backend).available()
    if not availability:
        raise RuntimeError(f"mx_dcn ONNX export needs the '{backend}' backend: {availability.reason}")
    args = args if isinstance(args, tuple) else (args,)
    if dynamo:
        table = translation_table()
        table.update(custom_translation_table or {})
        kwargs["custom_translation_table"] = table
    else:
        if f is None:
            raise ValueError("f: the TorchScript-based exporter (dynamo=False) needs a file path")
        if custom_translation_table:
            raise ValueError("custom_translation_table: only used by the dynamo exporter (dynamo=True)")
        register_torchscript_symbolic()
    with registry.use_backend(backend):
        return torch.onnx.export(model, args, f, dynamo=dynamo, opset_version=opset_version, **kwargs)
