"""The algorithm of the AscendC backend (the same on the device and in the tests).

x goes channels-last; offsets and masks stay as given (N, C, Ho, Wo): the kernels read a tile's rows of
every tap from them directly. The output pixels (flattened N*Ho*Wo) are processed in launches that
fit the workspace budget. Forward, per launch: the im2col kernel samples columns (P, kh*kw, C_in) on
the vector cores, then torch's matmul (the cube unit through CANN on the device) multiplies them with
the weight, per convolution group, and adds the bias. Backward, per launch: columns are recomputed for
grad weight (matmul), grad columns come from a matmul with the weight, and the col2im kernel turns
them into grad x (accumulated over the launches), grad offset and grad mask (written at the launch's
pixels).

Determinism: under torch.use_deterministic_algorithms(True) (also with warn_only) or
MX_DCN_DETERMINISTIC=1, col2im runs its deterministic mode: grad x summed in a fixed order, bitwise the
same whatever the order the vector cores run in (kernels_ascend/op_kernel/mx_dcn_col2im.cpp).
"""
from __future__ import annotations

import os

import torch

from ...problem import Problem
from ..base import DETERMINISTIC_ENV
from .kernels import SamplingKernels
from .tiling import launch_chunks, launch_shape

def _weight_matrix(p: Problem, weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in/g, kh, kw) -> (g, kh*kw*C_in/g, C_out/g), rows ordered like the columns (tap, channel)."""
    g = p.groups
    w = weight.reshape(g, p.out_channels // g, p.in_channels // g, p.kernel_h, p.kernel_w)
    return w.permute(0, 3, 4, 2, 1).reshape(g, p.kernel_taps * (p.in_channels // g), p.out_channels // g)


def _group_columns(p: Problem, columns: torch.Tensor) -> torch.Tensor:
    """(P, K, C) -> (g, P, K*C/g)."""
    g, rows = p.groups, columns.shape[0]
    if g == 1:
        return columns.reshape(1, rows, -1)
    cols = columns.reshape(rows, p.kernel_taps, g, p.in_channels // g)
    return cols.permute(2, 0, 1, 3).reshape(g, rows, -1)


def _ungroup_columns(p: Problem, grouped: torch.Tensor) -> torch.Tensor:
    """(g, P, K*C/g) -> (P, K, C) contiguous."""
    g, rows = p.groups, grouped.shape[1]
    if g == 1:
        return grouped.reshape(rows, p.kernel_taps, p.in_channels).contiguous()
    cols = grouped.reshape(g, rows, p.kernel_taps, p.in_channels // g)
    return cols.permute(1, 2, 0, 3).reshape(rows, p.kernel_taps, p.in_channels).contiguous()


def channels_last(p: Problem, x):
    """x (N, C, H, W) -> (N, H, W, C) contiguous: the kernels' layout of the image (a view of a
    channels_last x costs no copy)."""
    return x.permute(0, 2, 3, 1).contiguous()


def deterministic_backward() -> bool:
    """Whether col2im must sum grad x in a fixed order: torch.use_deterministic_algorithms(True) (with
    or without warn_only: a deterministic implementation exists) or MX_DCN_DETERMINISTIC=1."""
    return torch.are_deterministic_algorithms_enabled() or \
        os.environ.get(DETERMINISTIC_ENV, "0").lower() in ("1", "true", "yes", "on")


class _AscendCFunction(torch.autograd.Function):
    """fp32 in, fp32 out; the kernels' provider does the sampling, torch.matmul the products."""

    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, problem: Problem, kernels: SamplingKernels):
        p = problem
        x_nhwc = channels_last(p, x)
        offset, mask = offset.contiguous(), None if mask is None else mask.contiguous()
        w_mat = _weight_matrix(p, weight)
        out = x.new_empty(p.batch * p.out_height * p.out_width, p.out_channels)
        for start, count in launch_chunks(p):
            columns = x.new_empty(count, p.kernel_taps, p.in_channels)
            kernels.im2col(launch_shape(p, start, count), x_nhwc, offset, mask, columns)
            rows = torch.bmm(_group_columns(p, columns), w_mat)            # (g, count, C_out/g)
            out[start:start + count] = rows.permute(1, 0, 2).reshape(count, p.out_channels)
        if bias is not None:
            out += bias
        ctx.problem, ctx.kernels = p, kernels
        ctx.save_for_backward(x, offset, mask, weight)
        ctx.has_bias = bias is not None
        return out.reshape(p.batch, p.out_height, p.out_width, p.out_channels).permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def backward(ctx, grad_out):
        x, offset, mask, weight = ctx.saved_tensors
        p, kernels = ctx.problem, ctx.kernels
        need_x, need_off, need_mask, need_w, need_b = ctx.needs_input_grad[:5]
        need_sampling = need_x or need_off or (need_mask and mask is not None)
        deterministic = need_sampling and deterministic_backward()
        x_nhwc = channels_last(p, x)
        w_mat = _weight_matrix(p, weight)
        g = p.groups
        pixels = p.batch * p.out_height * p.out_width
        grad_rows = grad_out.permute(0, 2, 3, 1).reshape(pixels, g, p.out_channels // g)
        grad_x = torch.zeros_like(x_nhwc) if need_sampling else None
        grad_off = torch.empty_like(offset) if need_sampling else None
        grad_msk = torch.empty_like(mask) if need_sampling and mask is not None else None
        grad_w = torch.zeros_like(w_mat) if need_w else None
        for start, count in launch_chunks(p):
            go = grad_rows[start:start + count].permute(1, 0, 2)            # (g, count, C_out/g)
            if need_w:
                columns = x.new_empty(count, p.kernel_taps, p.in_channels)
                kernels.im2col(launch_shape(p, start, count), x_nhwc, offset, mask, columns)
                grad_w += torch.bmm(_group_columns(p, columns).transpose(1, 2), go)
            if need_sampling:
                grad_columns = _ungroup_columns(p, torch.bmm(go, w_mat.transpose(1, 2)))
                kernels.col2im(launch_shape(p, start, count, deterministic), x_nhwc, offset, mask, grad_columns,
                               grad_x, grad_off, grad_msk)
        gx = grad_x.permute(0, 3, 1, 2) if need_x else None
        goff = grad_off if need_off else None
        gmask = grad_msk if need_mask and grad_msk is not None else None
        gw = None
        if need_w:
            gw = grad_w.reshape(g, p.kernel_h, p.kernel_w, p.in_channels // g, p.out_channels // g)
            gw = gw.permute(0, 4, 3, 1, 2).reshape(weight.shape)
        gb = grad_out.sum(dim=(0, 2, 3)) if need_b and ctx.has_bias else None
        return gx, goff, gmask, gw, gb, None, None


def run_with_kernels(problem: Problem, x, offset, mask, weight, bias, kernels: SamplingKernels) -> torch.Tensor:
    """The ascendc algorithm with a given kernel provider; differentiable. Half types are computed in
    float32 and the result cast back (autograd carries the casts)."""
    out_dtype = x.dtype
    f32 = torch.float32
    cast = [None if t is None else t.to(f32) for t in (x, offset, mask, weight, bias)]
    out = _AscendCFunction.apply(*cast, problem, kernels)
    return out.to(out_dtype)
