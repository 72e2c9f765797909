"""How the `cann` backend gets mx_dcn's semantics out of CANN's deformable convolution.

CANN writes the corner origin of a sample as (int(x), int(y)) -- truncation -- in the documented
formula of aclnnDeformableConv2d and torch_npu.npu_deformable_conv2d, while its open A2 kernel and its
golden floor (hicann/ops-nn, conv/deformable_conv2d: docs/aclnnDeformableConv2d.md,
op_kernel/deformable_conv2d_base.cpp, tests/assets/golden.py; mx_dcn/testing/cann_model.py models
both). For a coordinate in (-1, 0) truncation blends rows 0 and 1 with weights 1 - y > 1 and y < 0 (an
extrapolation), and in (-2, -1) it gives row 0 the weight y + 1 < 0, where mx_dcn (docs/design.md) gives
(y + 1) * row 0, and 0. Which rule an installed CANN 8.x binary applies cannot be checked without one,
so every call is converted so that both give mx_dcn's result:

- the image gets SHIFT = 2 zero rows on top and zero columns on the left, and each sample keeps its
  place in the image: CANN's top padding shrinks by up to 2 and what it cannot absorb is added to the
  offsets (dy + 1 for padding 1, + 2 for padding 0; exact for padding >= 2). A sample that can
  reach the image then has coordinates above -1 + 2 = 1, where int() and floor() agree, and one
  further out reads only zero rows;
- the bottom and right padding keep the output size where they can; with padding 0 the output gains
  up to ceil(2 / stride) rows and columns, computed on dummy samples (offset 0, mask 0) and cropped;
- backward: the offset and mask gradients of samples outside the open box (-1, H) x (-1, W) are set to
  zero. After the shift a sample exactly on -1 lies inside CANN's box, and its floor-side derivative
  would reach row 0 (torchvision's rule); mx_dcn's rule sends it nothing.
The price: the image is copied with two more rows and columns, and at padding 0 a few outputs more.
Tested on CPU with both rules of the model (tests/test_cann_semantics.py); never run on an NPU.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from ..problem import Problem

SHIFT = 2


def _axis(pad: int) -> Tuple[int, int, int]:
    """(CANN padding before, CANN padding after, offset shift) of one axis with mx_dcn padding `pad`."""
    before = max(pad - SHIFT, 0)
    shift = SHIFT + before - pad
    return before, max(pad - shift, 0), shift


class ShiftedCall:
    """The converted form of one call, and the way back."""

    def __init__(self, p: Problem):
        self.p = p
        (top, bottom, self.shift_h), (left, right, self.shift_w) = _axis(p.padding[0]), _axis(p.padding[1])
        self.padding = [top, bottom, left, right]
        (sh, sw), (dh, dw) = p.stride, p.dilation
        self.out_h = (p.height + SHIFT + top + bottom - dh * (p.kernel_h - 1) - 1) // sh + 1
        self.out_w = (p.width + SHIFT + left + right - dw * (p.kernel_w - 1) - 1) // sw + 1

    def op_args(self) -> dict:
        p = self.p
        (sh, sw), (dh, dw) = p.stride, p.dilation
        return dict(kernel_size=[p.kernel_h, p.kernel_w], stride=[1, 1, sh, sw], padding=list(self.padding),
                    dilation=[1, 1, dh, dw], groups=p.groups, deformable_groups=p.deformable_groups, modulated=True)

    def image(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (SHIFT, 0, SHIFT, 0)).contiguous()

    def offsets(self, offset_mask: torch.Tensor) -> torch.Tensor:
        """The planar [dx, dy, mask] tensor for the shifted image, on the (possibly larger) output grid."""
        p, taps = self.p, offset_mask.shape[1] // 3
        out = offset_mask.new_zeros(p.batch, 3 * taps, self.out_h, self.out_w)
        out[:, :, :p.out_height, :p.out_width] = offset_mask
        out[:, :taps, :p.out_height, :p.out_width] += self.shift_w
        out[:, taps:2 * taps, :p.out_height, :p.out_width] += self.shift_h
        return out

    def output(self, out: torch.Tensor) -> torch.Tensor:
        return out[:, :, :self.p.out_height, :self.p.out_width]

    def grad_output(self, grad_out: torch.Tensor) -> torch.Tensor:
        p = self.p
        return F.pad(grad_out, (0, self.out_w - p.out_width, 0, self.out_h - p.out_height)).contiguous()

    def grad_image(self, grad_x: torch.Tensor) -> torch.Tensor:
        return grad_x[:, :, SHIFT:, SHIFT:]

    def grad_offsets(self, grad_offset_mask: torch.Tensor, offset_mask: torch.Tensor) -> torch.Tensor:
        """The gradient of the original planar tensor: cropped, zero for samples outside the open box."""
        p = self.p
        g = grad_offset_mask[:, :, :p.out_height, :p.out_width]
        inside = inside_box(p, offset_mask).repeat(1, 3, 1, 1)
        return torch.where(inside, g, torch.zeros((), dtype=g.dtype, device=g.device))


def inside_box(p: Problem, offset_mask: torch.Tensor) -> torch.Tensor:
    """(N, dg*kh*kw, Ho, Wo): whether each sample lies in the open box (-1, H) x (-1, W) (mx_dcn's rule;
    a NaN coordinate is outside)."""
    taps = offset_mask.shape[1] // 3
    (sh, sw), (ph, pw), (dh, dw) = p.stride, p.padding, p.dilation
    dev, dt = offset_mask.device, offset_mask.dtype
    i = torch.arange(p.kernel_h, device=dev).repeat_interleave(p.kernel_w).repeat(p.deformable_groups)
    j = torch.arange(p.kernel_w, device=dev).repeat(p.kernel_h * p.deformable_groups)
    oh = torch.arange(p.out_height, device=dev)
    ow = torch.arange(p.out_width, device=dev)
    base_y = (oh.view(1, 1, -1, 1) * sh - ph + i.view(1, -1, 1, 1) * dh).to(dt)
    base_x = (ow.view(1, 1, 1, -1) * sw - pw + j.view(1, -1, 1, 1) * dw).to(dt)
    y = base_y + offset_mask[:, taps:2 * taps]
    x = base_x + offset_mask[:, :taps]
    return (y > -1) & (y < p.height) & (x > -1) & (x < p.width)
