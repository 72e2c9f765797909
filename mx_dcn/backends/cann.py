"""CANN's built-in deformable convolution through torch_npu: the NPU fallback for calls the AscendC
kernels reject (other SoCs, C_in not a multiple of 64, deformable groups > 1, shapes the tiling
cannot fit, deterministic mode). The portable backend remains the last resort.

Call: `torch_npu.npu_deformable_conv2d(x, weight, offset_mask, bias, kernel_size, stride, padding,
dilation, groups, deformable_groups, modulated=True) -> (out, offset_out)` with
- offset_mask (N, 3*dg*kh*kw, Ho, Wo) planar [dx..., dy..., mask...] (mx_dcn.layouts.canonical_to_cann);
- stride [1, 1, sh, sw], padding [top, bottom, left, right], dilation [1, 1, dh, dw];
- backward through `torch_npu.npu_deformable_conv2dbk(x, grad_out, offset_out, weight, offset_mask, ...)`
  -> (grad_x, grad_weight, grad_offset_mask, grad_bias); grad bias is computed here as grad_out summed.
DCNv1 (no mask) is run with a mask of ones: the op supports only modulated=True (below).
CANN documents truncated corner origins where its kernel floors; the call goes in the converted form of
cann_sampling.py (two zero rows and columns in front of the image), on which both rules give mx_dcn's
result.

Limits, by rule name, as CANN documents them for aclnnDeformableConv2d and aclnnDeformableConv2dBackward
(hicann/ops-nn: conv/deformable_conv2d/docs/aclnnDeformableConv2d.md and
conv/convolution_backward/docs/aclnnDeformableConv2dBackward.md, parameter tables), so that a call
beyond them falls back (or raises in strict mode) before the op instead of failing inside it:
- "dtype": float64 is refused (the op takes FLOAT32, FLOAT16, BFLOAT16; mx_dcn computes in float32 and
  casts half types in and out, rather than silently computing float64 in float32);
- "empty": empty tensors are not supported (a batch of 0);
- "kernel_taps": K_H * K_W <= 2048;
- "kernel_volume": K_H * K_W * C_in / groups <= 65535 (a 3x3 layer with 8192 input channels, or a 7x7
  with 2048, breaks it);
- "plane_size": inH * inW <= 2^31 - 1, judged on the image CANN receives (two rows and columns more);
- "square_kernel": kh == kw. The order of `kernel_size` differs between the op's documentation
  ([K_H, K_W]) and torch_npu's own wrapper (torch_npu.contrib, [kw, kh]); until verified on hardware,
  non-square kernels go to the portable backend rather than risk a transposed kernel.
`modulated` must be true (both docs: only true is supported): DCNv1 calls pass a mask of ones, a
conversion the wiring test checks. Formats: the tensors are passed contiguous NCHW (ND/NCHW documented).

Determinism: both docs state the op is deterministic by default, and torch_npu lists
npu_deformable_conv2d among its deterministic APIs (its deterministic-computing API list). On Atlas A2
torch_npu runs the backward through its older aclop path (op-plugin's npu_deformable_conv2dbk falls back
to it where aclnnDeformableConv2dBackward is not offered: that doc lists Ascend 950 only). As
documented, not tested here: no NPU exists where this was written.

NOT verified on hardware. The layout conversion is tested on CPU tensors (tests/test_ascend_cann.py),
and the call wiring against a stand-in of the op that follows the documentation.
"""
from __future__ import annotations

from typing import List

import torch

from ..layouts import canonical_to_cann
from ..problem import Problem
from .base import AVAILABLE, Availability, Backend, Violation, missing_pieces
from .cann_sampling import SHIFT, ShiftedCall

# Documented limits of aclnnDeformableConv2d / aclnnDeformableConv2dBackward (see the module docstring).
MAX_KERNEL_TAPS = 2048
MAX_KERNEL_VOLUME = 65535
MAX_PLANE = 2**31 - 1


class _CannFunction(torch.autograd.Function):
    """The op in the converted form of cann_sampling.ShiftedCall (mx_dcn's sampling rule whichever of
    its two documented rules CANN applies). Empty batches never get here (rule "empty")."""

    @staticmethod
    def forward(ctx, x, offset_mask, weight, bias, problem: Problem):
        import torch_npu
        ctx.has_bias = bias is not None
        call = ShiftedCall(problem)
        x2, offset_mask2 = call.image(x), call.offsets(offset_mask)
        out, offset_out = torch_npu.npu_deformable_conv2d(x2, weight, offset_mask2, bias, **call.op_args())
        ctx.call = call
        ctx.save_for_backward(x2, offset_mask, offset_mask2, weight, offset_out)
        return call.output(out)

    @staticmethod
    def backward(ctx, grad_out):
        import torch_npu
        gb = grad_out.sum(dim=(0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[3] else None
        call = ctx.call
        x2, offset_mask, offset_mask2, weight, offset_out = ctx.saved_tensors
        gx, gw, goff, _ = torch_npu.npu_deformable_conv2dbk(x2, call.grad_output(grad_out), offset_out, weight,
                                                            offset_mask2, **call.op_args())
        return call.grad_image(gx), call.grad_offsets(goff, offset_mask), gw, gb, None


class CannBackend(Backend):
    name = "cann"
    device_types = ("npu",)
    description = "torch_npu.npu_deformable_conv2d (CANN built-in), planar offsets"
    limits = ("dtype: float32, float16 or bfloat16 (computed in float32); float64 refused",
              "empty: no empty tensors, e.g. a batch of 0 [CANN docs]",
              f"kernel_taps: K_H*K_W <= {MAX_KERNEL_TAPS} [CANN docs]",
              f"kernel_volume: K_H*K_W*C_in/groups <= {MAX_KERNEL_VOLUME} [CANN docs]",
              f"plane_size: (H+{SHIFT})*(W+{SHIFT}) <= 2^31 - 1 [CANN docs; {SHIFT} zero rows/columns added]",
              "square_kernel: kh == kw (the op's kernel_size order is unverified)")
    determinism = ("deterministic by default as documented by CANN (aclnnDeformableConv2d, "
                   "aclnnDeformableConv2dBackward) and listed by torch_npu; not tested here (no NPU)")

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
        p, out = problem, []
        if p.dtype == torch.float64:
            out.append(Violation("dtype", "float64 is not supported: the op computes in float32 (float16 and "
                                          "bfloat16 are cast to float32 and back)"))
        if p.batch == 0:
            out.append(Violation("empty", "the batch is empty; CANN's op does not support empty tensors"))
        taps = p.kernel_h * p.kernel_w
        if taps > MAX_KERNEL_TAPS:
            out.append(Violation("kernel_taps", f"kernel {p.kernel_h}x{p.kernel_w} has {taps} taps; CANN's op "
                                 f"takes at most {MAX_KERNEL_TAPS}"))
        volume = taps * (p.in_channels // p.groups)
        if volume > MAX_KERNEL_VOLUME:
            out.append(Violation("kernel_volume", f"K_H*K_W*C_in/groups = {taps}*{p.in_channels // p.groups} = "
                                 f"{volume}; CANN's op takes at most {MAX_KERNEL_VOLUME}"))
        plane = (p.height + SHIFT) * (p.width + SHIFT)   # the image CANN receives (cann_sampling.py)
        if plane > MAX_PLANE:
            out.append(Violation("plane_size", f"(H+{SHIFT})*(W+{SHIFT}) = {plane} exceeds 2^31 - 1, CANN's limit "
                                 f"for the input plane (the call adds {SHIFT} zero rows and columns)"))
        if p.kernel_h != p.kernel_w:
            out.append(Violation("square_kernel", f"kernel {p.kernel_h}x{p.kernel_w} is not square; "
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
