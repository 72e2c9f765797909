"""The public operator: mx_driving's signatures and defaults, with the bias honoured.

Every call is validated (mx_dcn.problem.describe), then dispatched to the backend the registry picks
(mx_dcn.registry.resolve); `explain` returns that decision without running anything.
"""
from __future__ import annotations

import dataclasses
import sys
import warnings
from typing import Optional

import torch

from . import registry
from .problem import IntOrPair, Problem, describe, normalize_bias


def modulated_deform_conv2d(x: torch.Tensor, offset: torch.Tensor, mask: Optional[torch.Tensor],
                            weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                            stride: IntOrPair = 1, padding: IntOrPair = 0, dilation: IntOrPair = 1,
                            groups: int = 1, deformable_groups: int = 1) -> torch.Tensor:
    """Modulated deformable convolution (DCNv2); `mask=None` gives DCNv1.

    x (N, C_in, H, W); offset (N, 2*dg*kh*kw, H_out, W_out) ordered (dg, kh, kw, [dy, dx]);
    mask (N, dg*kh*kw, H_out, W_out), used as given (apply sigmoid yourself, as mmcv's layers do);
    weight (C_out, C_in/groups, kh, kw); bias (C_out,) or None. Returns (N, C_out, H_out, W_out).
    """
    bias = normalize_bias(bias)
    if torch.jit.is_tracing():  # the TorchScript ONNX exporter: validation reads sizes, which the
        with warnings.catch_warnings():  # tracer warns about; it is not part of the traced graph
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            problem = describe(x, offset, mask, weight, bias, stride, padding, dilation, groups,
                               deformable_groups)
    else:
        problem = describe(x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups)
    if torch.compiler.is_compiling():
        if torch.compiler.is_exporting() and _onnx_exporting():
            from .onnx import emit_deform_conv  # the dynamo exporter: one ONNX DeformConv node
            return emit_deform_conv(problem, x, offset, mask, weight, bias)
        # The sizes do not enter the choice, so one graph serves every batch size without a graph
        # break or a recompile (Problem.without_sizes); the kernels enforce their size limits.
        judged = problem.without_sizes()
        backend = registry.get_backend(_resolve_name_constant(
            *(getattr(judged, f.name) for f in dataclasses.fields(judged))))
    else:
        if _onnx_exporting():  # the TorchScript exporter is tracing this call: teach it the native op
            from .onnx import register_torchscript_symbolic
            register_torchscript_symbolic()
        backend = registry.resolve(problem)
    return backend.run(problem, x, offset, mask, weight, bias)


def _onnx_exporting() -> bool:
    """Whether torch.onnx.export is running; never imports torch.onnx (torch loads it lazily, and a
    program that has not loaded it is not exporting). Another thread may be importing it right now:
    a half-initialised module has no is_in_onnx_export yet, and nobody is exporting with it."""
    is_exporting = getattr(sys.modules.get("torch.onnx"), "is_in_onnx_export", None)
    return is_exporting is not None and is_exporting()


def _assume_constant_result(fn):
    """`torch.compiler.assume_constant_result(fn)` without importing torch._dynamo when it is not loaded
    yet: that import took ~2 s here, as much again as `import torch`, for every program that imports
    mx_dcn, compiling or not. The decorator only sets the attribute below, which the compiler reads when
    it traces a call to fn (tests/test_foundation.py checks that torch's decorator still does just that)."""
    if "torch._dynamo" in sys.modules:
        return torch.compiler.assume_constant_result(fn)
    fn._dynamo_marked_constant = True
    return fn


@_assume_constant_result
def _resolve_name_constant(*fields) -> str:
    """The registry's choice under torch.compile / torch.export: made once at trace time from the
    problem's constant fields (sizes left out, see Problem.without_sizes) and baked into
    the graph, since the registry's locks cannot be traced."""
    return registry.resolve(Problem(*fields)).name


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, stride: IntOrPair = 1,
                  padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1,
                  deformable_groups: int = 1, bias=False, im2col_step: int = 32) -> torch.Tensor:
    """Deformable convolution v1 with mx_driving's signature. `bias` may be False/None or a tensor
    (C_out,). `im2col_step` is accepted for compatibility and unused: mx_dcn sizes its chunks from
    the workspace budget (mx_dcn.workspace) instead."""
    if not isinstance(im2col_step, int) or isinstance(im2col_step, bool) or im2col_step < 1:
        raise ValueError(f"im2col_step: expected a positive int (it is unused), got {im2col_step!r}")
    return modulated_deform_conv2d(x, offset, None, weight, normalize_bias(bias), stride, padding,
                                   dilation, groups, deformable_groups)


class ModulatedDeformConv2dFunction:
    """mx_driving / mmcv-compatible entry point: `ModulatedDeformConv2dFunction.apply(x, offset, mask,
    weight, bias, stride, padding, dilation, groups, deformable_groups)`. Gradients come from the
    chosen backend's autograd support, so `apply` returns a differentiable tensor like
    `torch.autograd.Function.apply` does."""

    @staticmethod
    def apply(x, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
              deformable_groups=1):
        return modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, groups,
                                       deformable_groups)


class DeformConv2dFunction:
    """mx_driving-compatible v1 entry point: `DeformConv2dFunction.apply(x, offset, weight, stride,
    padding, dilation, groups, deformable_groups, bias=False, im2col_step=32)`."""

    @staticmethod
    def apply(x, offset, weight, stride=1, padding=0, dilation=1, groups=1, deformable_groups=1,
              bias=False, im2col_step=32):
        return deform_conv2d(x, offset, weight, stride, padding, dilation, groups, deformable_groups,
                             bias, im2col_step)


def explain(x, offset, mask, weight, bias=None, stride: IntOrPair = 1, padding: IntOrPair = 0,
            dilation: IntOrPair = 1, groups: int = 1, deformable_groups: int = 1, *,
            device: Optional[str] = None, soc: Optional[str] = None) -> registry.SelectionReport:
    """Which backend this call would get, and why each other backend would not -- without running it.

    Tensors may be meta tensors. `device` ("cpu", "cuda", "npu") and `soc` (e.g. "Ascend910B2")
    declare a target this machine need not have; by default the tensors' device is the target
    (meta tensors default to "cpu"). Print the report, or read `.chosen` and
    `.backends[name].violations` (each with `.rule` and `.message`).
    """
    if device is None and isinstance(x, torch.Tensor) and x.device.type == "meta":
        device = "cpu"
    problem = describe(x, offset, mask, weight, normalize_bias(bias), stride, padding, dilation, groups,
                       deformable_groups, device=device, soc=soc)
    return registry.select(problem)
