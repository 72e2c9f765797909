"""The algorithm of the AscendC backend (the same on the device and in the tests).

Inputs go channels-last; the output pixels (flattened N*Ho*Wo) are processed in launches that fit the
workspace budget. Forward, per launch: the im2col kernel samples columns (P, kh*kw, C_in) on the vector
cores, then torch's matmul (the cube unit through CANN on the device) multiplies them with the weight,
per convolution group, and adds the bias. Backward, per launch: columns are recomputed for grad weight
(matmul), grad columns come from a matmul with the weight, and the col2im kernel turns them into grad x
(atomic adds), grad offset and grad mask.

Determinism: col2im adds grad x atomically across vector cores, so the registry sends calls made under
torch.use_deterministic_algorithms(True) to a deterministic backend (rule "deterministic"); if the flag
is set between a forward and its backward, the backward raises (warn_only: warns), like torch's ops.
"""
from __future__ import annotations

import warnings

import torch

from ...problem import Problem
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


def channels_last(p: Problem, x, offset, mask):
    """x (N, H, W, C), offset (P, K, 2), mask (P, K) or None: the kernels' layouts (P = N*Ho*Wo)."""
    pixels = p.batch * p.out_height * p.out_width
    x_nhwc = x.permute(0, 2, 3, 1).contiguous()
    off = offset.permute(0, 2, 3, 1).reshape(pixels, p.kernel_taps, 2).contiguous()
    msk = None if mask is None else mask.permute(0, 2, 3, 1).reshape(pixels, p.kernel_taps).contiguous()
    return x_nhwc, off, msk



def _alert_not_deterministic() -> None:
    """As torch's own non-deterministic ops do under torch.use_deterministic_algorithms(True)."""
    message = ("mx_dcn ascendc backward: col2im adds grad_x atomically across vector cores, so the order of "
               "float additions varies from run to run; it has no deterministic implementation, but "
               "torch.use_deterministic_algorithms(True) is set (calls made with it set go to a deterministic "
               "backend; this call's forward ran before it was set -- or pass warn_only=True to accept it)")
    if torch.is_deterministic_algorithms_warn_only_enabled():
        warnings.warn(message, UserWarning, stacklevel=3)
    else:
        raise RuntimeError(message)


class _AscendCFunction(torch.autograd.Function):
    """fp32 in, fp32 out; the kernels' provider does the sampling, torch.matmul the products."""

    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, problem: Problem, kernels: SamplingKernels):
        p = problem
        x_nhwc, off, msk = channels_last(p, x, offset, mask)
        w_mat = _weight_matrix(p, weight)
        out = x.new_empty(p.batch * p.out_height * p.out_width, p.out_channels)
        for start, count in launch_chunks(p):
            columns = x.new_empty(count, p.kernel_taps, p.in_channels)
            kernels.im2col(launch_shape(p, start, count), x_nhwc, off[start:start + count],
                           None if msk is None else msk[start:start + count], columns)
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
        if need_sampling and torch.are_deterministic_algorithms_enabled():
            _alert_not_deterministic()
        x_nhwc, off, msk = channels_last(p, x, offset, mask)
        w_mat = _weight_matrix(p, weight)
        g = p.groups
        pixels = p.batch * p.out_height * p.out_width
        grad_rows = grad_out.permute(0, 2, 3, 1).reshape(pixels, g, p.out_channels // g)
        grad_x = torch.zeros_like(x_nhwc) if need_sampling else None
        grad_off = x.new_empty(pixels, p.kernel_taps, 2) if need_sampling else None
        grad_msk = x.new_empty(pixels, p.kernel_taps) if need_sampling and mask is not None else None
        grad_w = torch.zeros_like(w_mat) if need_w else None
        for start, count in launch_chunks(p):
            shape = launch_shape(p, start, count)
            go = grad_rows[start:start + count].permute(1, 0, 2)            # (g, count, C_out/g)
            chunk_mask = None if msk is None else msk[start:start + count]
            if need_w:
                columns = x.new_empty(count, p.kernel_taps, p.in_channels)
                kernels.im2col(shape, x_nhwc, off[start:start + count], chunk_mask, columns)
                grad_w += torch.bmm(_group_columns(p, columns).transpose(1, 2), go)
            if need_sampling:
                grad_columns = _ungroup_columns(p, torch.bmm(go, w_mat.transpose(1, 2)))
                kernels.col2im(shape, x_nhwc, off[start:start + count], chunk_mask, grad_columns, grad_x,
                               grad_off[start:start + count],
                               None if grad_msk is None else grad_msk[start:start + count])
        hw = (p.batch, p.out_height, p.out_width)
        gx = grad_x.permute(0, 3, 1, 2) if need_x else None
        goff = grad_off.reshape(*hw, 2 * p.kernel_taps).permute(0, 3, 1, 2) if need_off else None
        gmask = (grad_msk.reshape(*hw, p.kernel_taps).permute(0, 3, 1, 2)
                 if need_mask and grad_msk is not None else None)
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
