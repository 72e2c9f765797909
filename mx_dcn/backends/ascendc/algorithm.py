"""The algorithm of the AscendC backend (the same on the device and in the tests).

x goes channels-last; offsets and masks stay as given (N, C, Ho, Wo): the kernels read a tile's rows of
every tap from them directly. The output pixels (flattened N*Ho*Wo) are processed in launches that
fit the workspace budget (whole images when one fits). Forward, per launch: the im2col kernel samples
columns (P, kh*kw, C_in) on the vector cores, then torch's matmul (the cube unit through CANN on the
device) multiplies them with the weight and adds the bias -- with one convolution group and whole
images, one batched product writing the NCHW output directly (W (C_out, K*C) x columns^T per image).
Backward, per launch: columns are recomputed for grad weight, grad columns come from a product of
grad_out with the weight, and the col2im kernel turns them into grad x (accumulated over the
launches), grad offset and grad mask (written at the launch's pixels). The backward reuses the
forward's channels-last x and weight matrix.

Half precision (float16 / bfloat16 inputs): sampling in float32 (x, offsets and masks cast up), the
columns written by im2col in the inputs' type and multiplied on the cube with the weight in that type
(float32 accumulation), the bias added in the product (one rounding of the output) on the direct path,
after the product's rounding otherwise (groups > 1 or split images); grad weight: each launch's
half product summed in float32 over the launches, rounded to the weight's type at the end; grad
columns and col2im in float32, the x, offset and mask gradients rounded to their type once
(docs/numerics.md).

Determinism: under torch.use_deterministic_algorithms(True) (also with warn_only) or
MX_DCN_DETERMINISTIC=1, col2im runs its deterministic mode: grad x summed in a fixed order, bitwise the
same whatever the order the vector cores run in (kernels_ascend/op_kernel/mx_dcn_col2im.cpp).
"""
from __future__ import annotations

import torch

from ... import settings
from ...problem import Problem
from ..base import DETERMINISTIC_ENV
from .kernels import SamplingKernels
from .tiling import COL2IM, call_tiling_failure, launch_chunks, launch_shape

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
    return torch.are_deterministic_algorithms_enabled() or bool(settings.get(DETERMINISTIC_ENV))


def _direct(p: Problem, chunks) -> bool:
    """One group and launches of whole images: the products read and write NCHW directly."""
    plane = p.out_height * p.out_width
    return p.groups == 1 and all(start % plane == 0 and count % plane == 0 for start, count in chunks)


def _weight_rows(p: Problem, weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, kh, kw) -> (C_out, kh*kw*C_in), columns ordered like the columns' (tap, channel)."""
    return weight.permute(0, 2, 3, 1).reshape(p.out_channels, p.kernel_taps * p.in_channels)


class _AscendCFunction(torch.autograd.Function):
    """Sampling in fp32; the products, weight, bias and output in the cube's type (fp32, fp16 or bf16);
    the kernels' provider does the sampling, torch the products."""

    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, problem: Problem, kernels: SamplingKernels):
        """x, offset, mask float32; weight and bias float32, or float16 / bfloat16: the columns' and the
        products' type (the output's too)."""
        p = problem
        cube = weight.dtype
        x_nhwc = channels_last(p, x)
        offset, mask = offset.contiguous(), None if mask is None else mask.contiguous()
        # The launches are fixed here and reused by the backward: they depend on the workspace budget,
        # which may differ where and when the backward runs (another thread, a changed setting).
        chunks = launch_chunks(p)
        direct = _direct(p, chunks)
        w = _weight_rows(p, weight) if direct else _weight_matrix(p, weight)
        plane, taps_c = p.out_height * p.out_width, p.kernel_taps * p.in_channels
        if direct:
            out = weight.new_empty(p.batch, p.out_channels, p.out_height, p.out_width)
        else:
            rows_out = weight.new_empty(p.batch * plane, p.out_channels)
        for start, count in chunks:
            columns = weight.new_empty(count, p.kernel_taps, p.in_channels)
            kernels.im2col(launch_shape(p, start, count, columns=cube), x_nhwc, offset, mask, columns)
            if direct:   # out[n] = bias + W (C_out, K*C) @ columns[n]^T, per image of the launch
                images = count // plane
                target = out[start // plane:start // plane + images].view(images, p.out_channels, plane)
                cols = columns.view(images, plane, taps_c).transpose(1, 2)
                weights = w.expand(images, p.out_channels, taps_c)
                if bias is None:
                    torch.bmm(weights, cols, out=target)
                else:
                    torch.baddbmm(bias.view(1, -1, 1), weights, cols, out=target)
            else:
                rows = torch.bmm(_group_columns(p, columns), w)            # (g, count, C_out/g)
                rows_out[start:start + count] = rows.permute(1, 0, 2).reshape(count, p.out_channels)
        if not direct:
            if bias is not None:
                rows_out += bias
            out = rows_out.reshape(p.batch, p.out_height, p.out_width, p.out_channels).permute(0, 3, 1, 2).contiguous()
        ctx.problem, ctx.kernels, ctx.direct, ctx.chunks = p, kernels, direct, chunks
        ctx.weight_shape = weight.shape
        ctx.save_for_backward(x_nhwc, offset, mask, w)
        ctx.has_bias = bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x_nhwc, offset, mask, w = ctx.saved_tensors
        p, kernels, direct, chunks = ctx.problem, ctx.kernels, ctx.direct, ctx.chunks
        need_x, need_off, need_mask, need_w, need_b = ctx.needs_input_grad[:5]
        need_sampling = need_x or need_off or (need_mask and mask is not None)
        deterministic = need_sampling and deterministic_backward()
        if deterministic:   # the forward's selection judged col2im in the mode of its own time
            failure = call_tiling_failure(p, kernels.core_num, True, kernels=(COL2IM,), chunks=chunks)
            if failure:
                raise RuntimeError(f"mx_dcn ascendc backward: deterministic algorithms are on, but were off when "
                                   f"this call's forward chose the backend, and {failure}; turn them on before "
                                   f"the forward, so that the call goes to a backend that can")
        g, plane, taps_c = p.groups, p.out_height * p.out_width, p.kernel_taps * p.in_channels
        grad_x = torch.zeros_like(x_nhwc) if need_sampling else None
        grad_off = torch.empty_like(offset) if need_sampling else None
        grad_msk = torch.empty_like(mask) if need_sampling and mask is not None else None
        grad_w = torch.zeros_like(w, dtype=torch.float32) if need_w else None   # summed over launches in fp32
        w32 = w.float()
        if direct:
            go_all = grad_out.contiguous().view(p.batch, p.out_channels, plane)
        else:
            grad_rows = grad_out.permute(0, 2, 3, 1).reshape(p.batch * plane, g, p.out_channels // g)
        for start, count in chunks:
            if direct:
                go = go_all[start // plane:start // plane + count // plane]             # (images, C_out, plane)
            else:
                go = grad_rows[start:start + count].permute(1, 0, 2)                    # (g, count, C_out/g)
            if need_w:
                columns = w.new_empty(count, p.kernel_taps, p.in_channels)
                kernels.im2col(launch_shape(p, start, count, columns=w.dtype), x_nhwc, offset, mask, columns)
                if direct:   # grad W (C_out, K*C) += sum over images of grad_out[n] @ columns[n]
                    grad_w += torch.bmm(go, columns.view(-1, plane, taps_c)).sum(0, dtype=torch.float32)
                else:
                    grad_w += torch.bmm(_group_columns(p, columns).transpose(1, 2), go).float()
            if need_sampling:   # in float32: col2im takes float32 grad columns
                go32 = go.float()
                if direct:   # grad columns[n] = grad_out[n]^T @ W
                    grad_columns = torch.bmm(go32.transpose(1, 2), w32.expand(go.shape[0], p.out_channels, taps_c))
                    grad_columns = grad_columns.view(count, p.kernel_taps, p.in_channels)
                else:
                    grad_columns = _ungroup_columns(p, torch.bmm(go32, w32.transpose(1, 2)))
                kernels.col2im(launch_shape(p, start, count, deterministic), x_nhwc, offset, mask, grad_columns,
                               grad_x, grad_off, grad_msk)
        gx = grad_x.permute(0, 3, 1, 2) if need_x else None
        goff = grad_off if need_off else None
        gmask = grad_msk if need_mask and grad_msk is not None else None
        gw = None
        if need_w and direct:
            gw = grad_w.to(w.dtype).view(p.out_channels, p.kernel_h, p.kernel_w, p.in_channels).permute(0, 3, 1, 2)
        elif need_w:
            gw = grad_w.to(w.dtype).reshape(g, p.kernel_h, p.kernel_w, p.in_channels // g, p.out_channels // g)
            gw = gw.permute(0, 4, 3, 1, 2).reshape(ctx.weight_shape)
        gb = grad_out.sum(dim=(0, 2, 3)) if need_b and ctx.has_bias else None
        return gx, goff, gmask, gw, gb, None, None


def run_with_kernels(problem: Problem, x, offset, mask, weight, bias, kernels: SamplingKernels) -> torch.Tensor:
    """The ascendc algorithm with a given kernel provider; differentiable. x, offsets and masks are
    sampled in float32; with float16 / bfloat16 inputs the columns, the weight, the bias and the output
    keep that type (float32 accumulation on the cube); autograd carries the casts."""
    f32, cube = torch.float32, x.dtype if x.dtype in (torch.float16, torch.bfloat16) else torch.float32
    sampled = [None if t is None else t.to(f32) for t in (x, offset, mask)]
    products = [None if t is None else t.to(cube) for t in (weight, bias)]
    out = _AscendCFunction.apply(*sampled, *products, problem, kernels)
    return out.to(x.dtype)
