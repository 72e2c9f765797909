"""The portable backend: pure torch ops, differentiable by autograd, runs wherever torch runs (CPU,
CUDA, NPU through torch_npu, meta). It is the fallback of every device and the cross-check of the
native kernels.

Algorithm, per chunk of images and output rows: coordinates for every (image, deformable group, tap,
output pixel); the four corners gathered from the input with one `gather` each, blended with
bilinear weights (corners outside the image masked out with `where`, so a padded zero stays an exact
zero even next to an inf); modulated by the mask; then one batched matmul with the weight per
convolution group. Gradients w.r.t. offsets flow through the weights (d frac(y)/dy = 1), which gives
the floor-side derivative at integer coordinates, as the semantics require.

Memory: the chunk size follows the workspace budget (mx_dcn/workspace.py). When gradients are needed
and the call spans several chunks, each chunk is checkpointed, so what autograd keeps is the inputs,
not every chunk's intermediates.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch.utils.checkpoint import checkpoint

from ..problem import Problem
from ..workspace import chunk_size
from .base import Backend

# Live intermediates of one sample column: 4 gathered corners, 4 weighted copies, running sum,
# mask product, plus index/validity tensors. A conservative multiplier of the column size.
_WORKSPACE_COPIES = 12


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _columns(p: Problem, x: torch.Tensor, offset: torch.Tensor, mask: Optional[torch.Tensor],
             row0: int, row1: int) -> torch.Tensor:
    """Modulated samples for output rows [row0, row1): shape (n, C_in * kh * kw, rows * W_out)."""
    n, c_in, height, width = x.shape
    dg, kh, kw = p.deformable_groups, p.kernel_h, p.kernel_w
    taps, rows, w_out = kh * kw, row1 - row0, p.out_width
    cpg = c_in // dg
    (sh, sw), (ph, pw), (dh, dw) = p.stride, p.padding, p.dilation
    dev, dt = x.device, x.dtype

    # Undeformed sampling grid: (taps, rows, w_out).
    ho = torch.arange(row0, row1, device=dev, dtype=dt)
    wo = torch.arange(w_out, device=dev, dtype=dt)
    ki = torch.arange(kh, device=dev, dtype=dt).repeat_interleave(kw)
    kj = torch.arange(kw, device=dev, dtype=dt).repeat(kh)
    base_y = (ho * sh - ph).view(1, rows, 1) + (ki * dh).view(taps, 1, 1)
    base_x = (wo * sw - pw).view(1, 1, w_out) + (kj * dw).view(taps, 1, 1)

    off = offset[:, :, row0:row1].reshape(n, dg, taps, 2, rows, w_out)
    y = base_y + off[:, :, :, 0]          # (n, dg, taps, rows, w_out)
    xs = base_x + off[:, :, :, 1]
    inside = (y > -1) & (y < height) & (xs > -1) & (xs < width)
    # Samples outside (including NaN / inf coordinates) are parked at 0 before any arithmetic, so no
    # NaN weight or garbage index is ever formed; their corners are all invalid and contribute nothing,
    # and autograd sends them an exact zero gradient.
    zero = torch.zeros((), dtype=dt, device=dev)
    y, xs = torch.where(inside, y, zero), torch.where(inside, xs, zero)
    y0, x0 = torch.floor(y), torch.floor(xs)
    ly, lx = y - y0, xs - x0
    hy, hx = 1 - ly, 1 - lx

    points = taps * rows * w_out
    planes = x.reshape(n, dg, cpg, height * width)
    cols = None
    for dy_corner, dx_corner, weight in ((0, 0, hy * hx), (0, 1, hy * lx), (1, 0, ly * hx), (1, 1, ly * lx)):
        yy, xx = y0 + dy_corner, x0 + dx_corner
        valid = inside & (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        # In int64: a float index is exact only below 2^24 (16.7M pixels).
        index = yy.clamp(0, height - 1).long() * width + xx.clamp(0, width - 1).long()
        index = index.reshape(n, dg, 1, points).expand(n, dg, cpg, points)
        corner = torch.gather(planes, 3, index) * weight.reshape(n, dg, 1, points)
        corner = torch.where(valid.reshape(n, dg, 1, points), corner, zero)
        cols = corner if cols is None else cols + corner
    if mask is not None:
        cols = cols * mask[:, :, row0:row1].reshape(n, dg, 1, points)
    # (n, dg, cpg, taps * rows * w_out) -> (n, C_in * taps, rows * w_out), channel-major like weight.
    return cols.reshape(n, c_in * taps, rows * w_out)


def _block(p: Problem, row0: int, row1: int, x, offset, mask, weight, bias):
    """Output rows [row0, row1) of a chunk of images: (n, C_out, rows, W_out)."""
    n = x.shape[0]
    groups = p.groups
    cols = _columns(p, x, offset, mask, row0, row1)
    cols = cols.reshape(n, groups, cols.shape[1] // groups, cols.shape[2])
    w = weight.reshape(groups, p.out_channels // groups, -1)
    out = torch.matmul(w.unsqueeze(0), cols)                  # (n, groups, C_out/groups, L)
    out = out.reshape(n, p.out_channels, row1 - row0, p.out_width)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1)
    return out


class PortableBackend(Backend):
    name = "portable"
    device_types = ("cpu", "cuda", "npu", "meta")
    description = "pure torch ops (gather + matmul), autograd for gradients; runs on any device"
    determinism = ("defers to torch: under torch.use_deterministic_algorithms(True) torch's own ops (the "
                   "scatter-add behind gather's gradient) take their deterministic implementation or raise")

    def run(self, problem, x, offset, mask, weight, bias):
        out_dtype = x.dtype
        ct = _compute_dtype(out_dtype)
        if ct != out_dtype:  # half types: compute in float32, return in the input dtype
            x, offset, weight = x.to(ct), offset.to(ct), weight.to(ct)
            mask = None if mask is None else mask.to(ct)
            bias = None if bias is None else bias.to(ct)

        p = problem
        element = torch.empty((), dtype=ct).element_size()
        row_bytes = p.in_channels * p.kernel_taps * p.out_width * element * _WORKSPACE_COPIES
        image_bytes = row_bytes * p.out_height
        images = chunk_size(p.batch, image_bytes)
        rows = p.out_height if images > 1 or image_bytes <= 0 else chunk_size(p.out_height, row_bytes)
        needs_grad = torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (x, offset, mask, weight, bias))
        if p.batch == 0 or (images >= p.batch and rows >= p.out_height):
            return _block(p, 0, p.out_height, x, offset, mask, weight, bias).to(out_dtype)
        # Several chunks: the result is allocated first, so a call whose output cannot exist fails
        # here with the allocator's error, before any work; each chunk is then written into it.
        out = torch.empty((p.batch, p.out_channels, p.out_height, p.out_width), dtype=ct, device=x.device)
        for b0 in range(0, p.batch, images):
            b1 = min(b0 + images, p.batch)
            args = (x[b0:b1], offset[b0:b1], None if mask is None else mask[b0:b1], weight, bias)
            for r0 in range(0, p.out_height, rows):
                r1 = min(r0 + rows, p.out_height)
                if needs_grad:
                    block = checkpoint(_block, p, r0, r1, *args, use_reentrant=False)
                else:
                    block = _block(p, r0, r1, *args)
                out[b0:b1, :, r0:r1] = block  # recorded by autograd (CopySlices) when it needs to be
        return out.to(out_dtype)
