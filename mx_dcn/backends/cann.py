"""CANN's built-in deformable convolution through torch_npu: the NPU fallback for calls the AscendC
kernels reject (other SoCs, C_in not a multiple of 64, deformable groups > 1, shapes the tiling
cannot fit). The portable backend remains the last resort.

Call: `torch_npu.npu_deformable_conv2d(x, weight, offset_mask, bias, kernel_size, stride, padding,
dilation, groups, deformable_groups, modulated=True) -> (out, offset_out)` with
- offset_mask (N, 3*dg*kh*kw, Ho, Wo) planar [dx..., dy..., mask...] (mx_dcn.layouts.canonical_to_cann);
- stride [1, 1, sh, sw], padding [top, bottom, left, right], dilation [1, 1, dh, dw];
- backward through `torch_npu.npu_deformable_conv2dbk(x, grad_out, offset_out, weight, offset_mask, ...)`
  -> (grad_x, grad_weight, grad_offset_mask, grad_bias); grad bias is computed here as grad_out summed.
DCNv1 (no mask) is run with a mask of ones (the documented op supports only modulated=True).
CANN documents truncated corner origins where its kernel floors; the call goes in the converted form of
cann_sampling.py (two zero rows and columns in front of the image), on which both rules give mx_dcn's
result.

Constraints, by rule name:
- "dtype": float64 is refused (compute is float32; float16/bfloat16 are cast to float32 and back).
- "square_kernel": kh == kw. The order of `kernel_size` differs between the op's documentation
  ([kh, kw]) and torch_npu's own wrapper (torch_npu.contrib, [kw, kh]); until verified on hardware,
  non-square kernels go to the portable backend rather than risk a transposed kernel.
NOT verified on hardware: no NPU exists where this was written. The layout conversion is tested on
CPU tensors (tests/test_ascend_cann.py), and the call wiring against a stand-in of the op that
follows the documentation.
"""
from __future__ import annotations

from typing import List

import torch

from ..layouts import canonical_to_cann
from ..problem import Problem
from .base import AVAILABLE, Availability, Backend, Violation, missing_pieces
from .cann_sampling import ShiftedCall


class _CannFunction(torch.autograd.Function):
    """The op in the converted form of cann_sampling.ShiftedCall (mx_dcn's sampling rule whichever of
    its two documented rules CANN applies)."""

    @staticmethod
    def forward(ctx, x, offset_mask, weight, bias, problem: Problem):
        import torch_npu
        p = problem
        ctx.problem, ctx.has_bias = p, bias is not None
        if p.batch == 0:
            ctx.save_for_backward(x, offset_mask, weight)
            ctx.empty = True
            return x.new_zeros(0, p.out_channels, p.out_height, p.out_width)
        ctx.empty = False
        call = ShiftedCall(p)
        x2, offset_mask2 = call.image(x), call.offsets(offset_mask)
        out, offset_out = torch_npu.npu_deformable_conv2d(x2, weight, offset_mask2, bias, **call.op_args())
        ctx.call = call
        ctx.save_for_backward(x2, offset_mask, offset_mask2, weight, offset_out)
        return call.output(out)

    @staticmethod
    def backward(ctx, grad_out):
        gb = grad_out.sum(dim=(0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[3] else None
        if ctx.empty:
            x, offset_mask, weight = ctx.saved_tensors
            return torch.zeros_like(x), torch.zeros_like(offset_mask), torch.zeros_like(weight), gb, None
        import torch_npu
        call = ctx.call
        x2, offset_mask, offset_mask2, weight, offset_out = ctx.saved_tensors
        gx, gw, goff, _ = torch_npu.npu_deformable_conv2dbk(x2, call.grad_output(grad_out), offset_out, weight,
                                                            offset_mask2, **call.op_args())
        return call.grad_image(gx), call.grad_offsets(goff, offset_mask), gw, gb, None


class CannBackend(Backend):
    name = "cann"
    device_types = ("npu",)
    description = "torch_npu.npu_deformable_conv2d (CANN built-in), planar offsets"

    @staticmethod
    def _probe() -> Availability:
        """Each missing piece by rule name: "torch_npu", "torch_npu_ops", "npu_device"."""
        try:
            import torch_npu
        except Exception as e:
            return missing_pieces([Violation("torch_npu", f"torch_npu is not importable ({type(e).__name__}: {e})")])
        missing = [name for name in ("npu_deformable_conv2d", "npu_deformable_conv2dbk") if not hasattr(torch_npu, name)]
        if missing:
            return missing_pieces([Violation("torch_npu_ops", f"this torch_npu lacks {', '.join(missing)}")])
        try:
            if not (torch.npu.is_available() and torch.npu.device_count() > 0):
                return missing_pieces([Violation("npu_device", "no NPU device is visible to torch_npu")])
        except Exception as e:
            return missing_pieces([Violation("npu_device", f"torch_npu cannot query the NPU ({type(e).__name__}: {e})")])
        return AVAILABLE

    def violations(self, problem: Problem) -> List[Violation]:
        out = []
        if problem.dtype == torch.float64:
            out.append(Violation("dtype", "float64 is not supported: the op computes in float32 (float16 and "
                                          "bfloat16 are cast to float32 and back)"))
        if problem.kernel_h != problem.kernel_w:
            out.append(Violation("square_kernel", f"kernel {problem.kernel_h}x{problem.kernel_w} is not square; "
                                 "the op's kernel_size order is unverified, so only square kernels are sent to it"))
        return out

    def run(self, problem, x, offset, mask, weight, bias):
        out_dtype, f32 = x.dtype, torch.float32
        x, offset, weight = x.to(f32), offset.to(f32), weight.to(f32)
        mask = None if mask is None else mask.to(f32)
        bias = None if bias is None else bias.to(f32)
        offset_mask = canonical_to_cann(offset, mask).contiguous()
        out = _CannFunction.apply(x.contiguous(), offset_mask, weight.contiguous(), bias, problem)
        return out.to(out_dtype)
