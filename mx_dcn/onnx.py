"""ONNX export: a model using mx_dcn becomes a graph with the standard `DeformConv` node (opset 19).

Plain `torch.onnx.export` works, with either exporter and no mx_dcn call first:

    torch.onnx.export(model, (x,), "model.onnx", opset_version=19)                 # dynamo exporter
    torch.onnx.export(model, (x,), "model.onnx", opset_version=19, dynamo=False)   # TorchScript exporter

How, without loading anything at `import mx_dcn` (torch.onnx itself is imported lazily by torch):
- dynamo exporter: while torch.onnx.export traces the model, `mx_dcn.modulated_deform_conv2d` emits
  `torch.onnx.ops.symbolic("DeformConv", ...)` instead of running a backend (`emit_deform_conv`), which
  the exporter writes as the ONNX node -- whatever backend the device has, portable included.
- TorchScript exporter: the eager call sees the export in progress and registers the symbolic of the
  native op `mx_dcn::deform_conv2d` (`register_torchscript_symbolic`) before the traced graph is
  converted, as torchvision registers its ops' symbolics.

A dynamic batch exports too: `dynamic_shapes=({0: torch.export.Dim("batch")},)` (dynamo) or
`dynamic_axes={"x": {0: "batch"}}` (TorchScript). `mx_dcn.onnx.export(model, args, f)` remains as a
shorthand that also checks the opset. `translation_table()` maps the native op for callers who pass
their own `custom_translation_table`.

Attributes: strides, pads [top, left, bottom, right] = [ph, pw, ph, pw], dilations, group and
offset_group; inputs X, W, offset, B (empty when there is no bias but a mask), mask (absent for
DCNv1). The offset/mask layout is mx_dcn's canonical one, which is ONNX's. onnx and onnxscript are
needed only to export (test extras).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from . import registry

OPSET = 19  # DeformConv entered the standard domain in opset 19

__all__ = ["OPSET", "translation_table", "register_torchscript_symbolic", "export", "native_backend_for",
           "emit_deform_conv"]


def _attributes(stride, padding, dilation, groups, deformable_groups) -> Dict[str, Any]:
    ph, pw = int(padding[0]), int(padding[1])
    return dict(strides=[int(stride[0]), int(stride[1])], pads=[ph, pw, ph, pw],
                dilations=[int(dilation[0]), int(dilation[1])], group=int(groups),
                offset_group=int(deformable_groups))


def emit_deform_conv(problem, x, offset, mask, weight, bias) -> torch.Tensor:
    """The ONNX DeformConv node for a validated call, during the dynamo exporter's trace."""
    inputs = [x, weight, offset, bias, mask]
    while inputs[-1] is None:  # ONNX omits trailing optional inputs; an inner one stays as ""
        inputs.pop()
    shape = (x.shape[0], problem.out_channels, problem.out_height, problem.out_width)
    return torch.onnx.ops.symbolic(
        "DeformConv", inputs,
        _attributes(problem.stride, problem.padding, problem.dilation, problem.groups,
                    problem.deformable_groups),
        dtype=x.dtype, shape=shape, version=OPSET)


def _deform_conv(input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
    """ONNX translation of mx_dcn::deform_conv2d (called by the exporter with onnxscript values)."""
    from onnxscript import opset19 as op

    return op.DeformConv(input, weight, offset, bias, mask,
                         **_attributes(stride, padding, dilation, groups, deformable_groups))


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
    attrs = _attributes(stride, padding, dilation, sh._get_const(groups, "i", "groups"),
                        sh._get_const(deformable_groups, "i", "deformable_groups"))
    return g.op("DeformConv", *inputs, **{f"{k}_i": v for k, v in attrs.items()})


_symbolic_registered = False


def register_torchscript_symbolic() -> None:
    """Teach the TorchScript-based exporter (torch.onnx.export(..., dynamo=False)) mx_dcn's op. Done
    by the first mx_dcn call traced by that exporter; calling it yourself is harmless."""
    global _symbolic_registered
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
           dynamo: bool = True, **kwargs):
    """`torch.onnx.export(model, args, f, opset_version=19, dynamo=dynamo, ...)`, refusing an opset
    without DeformConv up front. The TorchScript exporter (dynamo=False) traces the native op, so the
    native backend of `args`' device is forced while it runs (an error names why it is missing)."""
    if opset_version < OPSET:
        raise ValueError(f"opset_version: DeformConv needs opset >= {OPSET}, got {opset_version}")
    args = args if isinstance(args, tuple) else (args,)
    if dynamo:
        return torch.onnx.export(model, args, f, dynamo=True, opset_version=opset_version, **kwargs)
    if f is None:
        raise ValueError("f: the TorchScript-based exporter (dynamo=False) needs a file path")
    backend = native_backend_for(args)
    availability = registry.get_backend(backend).available()
    if not availability:
        raise RuntimeError(f"mx_dcn ONNX export with dynamo=False needs the '{backend}' backend: "
                           f"{availability.reason}")
    register_torchscript_symbolic()
    with registry.use_backend(backend):
        return torch.onnx.export(model, args, f, dynamo=False, opset_version=opset_version, **kwargs)
