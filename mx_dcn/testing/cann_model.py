"""A float64 model of CANN's deformable convolution, as its documentation and open sources define it, for
the tests of the `cann` backend (torch_npu.npu_deformable_conv2d / npu_deformable_conv2dbk, which run
aclnnDeformableConv2d or DeformableOffsets + Conv2D). Written from CANN's texts, apart from mx_dcn's
backends and from the canonical oracle (oracle.py), so that comparing the two shows where CANN's rules
and mx_dcn's differ.

CANN's rules (hicann/ops-nn, conv/deformable_conv2d and conv/deformable_offsets*):
- offset tensor: one planar tensor (N, 3*dg*kh*kw, Ho, Wo) = [dx..., dy..., mask...], each plane
  ordered (dg, kh, kw) -- x (width) first (docs/aclnnDeformableConv2d.md; tests/assets/golden.py
  compute_deform_out; the offsets-grad kernel indexes the W plane, then H at +dg*K, mask at +2*dg*K);
- kernel_size is [kh, kw] (the doc's "size 2 (K_H, K_W)"; golden.py; DeformableOffsets' shape
  inference multiplies offset H by ksize[0]); stride, padding, dilation have 4 elements, padding
  [top, bottom, left, right];
- sample point of output (oh, ow), tap (i, j): y = oh*sh - pad_top + i*dh + dy,
  x = ow*sw - pad_left + j*dw + dx;
- corners (x0, y0) and (x0 + 1, y0 + 1) with weights (x1 - x)(y1 - y), (x1 - x)(y - y0), ... where
  (x0, y0) = (int(x), int(y)) in the documented formula (truncation toward zero: `rounding="trunc"`)
  and floor in the A2 kernel (deformable_conv2d_base.cpp casts with CAST_FLOOR) and in the golden
  (`rounding="floor"`); the two differ for coordinates in (-2, -1) and (-1, 0);
- a corner outside [0, H) x [0, W) contributes zero (the kernel's corner masks, golden.py
  get_value); the forward has no test of the sample point itself;
- deformOut = mask * bilinear sample; out = bias + conv(deformOut, weight, stride=kernel_size, groups);
- backward (deformable_offsets_grad's kernel, op_kernel/arch35/deformable_offsets_grad.h): a sample
  outside the open box (-1, H) x (-1, W) sends no gradient; inside, the derivatives of the same
  bilinear over the in-image corners; grad_mask = sum_c grad * bilinear, grad_offset = mask * sum_c
  grad * d bilinear.
NaN / Inf propagation is not modelled (CANN documents none).
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np

ROUNDINGS = ("trunc", "floor")


def _np(t):
    if t is None:
        return None
    if hasattr(t, "detach"):
        t = t.detach().to("cpu").double().numpy()
    return np.asarray(t, dtype=np.float64)


def _corner_origin(v: float, rounding: str) -> int:
    if rounding == "trunc":
        return int(v)            # C/Python int(): toward zero, as the documented formula writes it
    if rounding == "floor":
        return math.floor(v)
    raise ValueError(f"rounding: expected one of {ROUNDINGS}, got {rounding!r}")


def _taps(y: float, x: float, height: int, width: int, rounding: str):
    """[(row, col, weight, d weight/dy, d weight/dx)] of the corners of (y, x) that lie in the image."""
    y0, x0 = _corner_origin(y, rounding), _corner_origin(x, rounding)
    y1, x1 = y0 + 1, x0 + 1
    corners = ((y0, x0, (x1 - x) * (y1 - y), -(x1 - x), -(y1 - y)),
               (y1, x0, (x1 - x) * (y - y0), (x1 - x), -(y - y0)),
               (y0, x1, (x - x0) * (y1 - y), -(x - x0), (y1 - y)),
               (y1, x1, (x - x0) * (y - y0), (x - x0), (y - y0)))
    return [c for c in corners if 0 <= c[0] < height and 0 <= c[1] < width]


def _geometry(x, offset_all, kernel_size, stride, padding, dilation, deformable_groups):
    n, c_in, height, width = x.shape
    kh, kw = int(kernel_size[0]), int(kernel_size[1])
    sh, sw, dh, dw = int(stride[2]), int(stride[3]), int(dilation[2]), int(dilation[3])
    top, left = int(padding[0]), int(padding[2])
    h_out, w_out = offset_all.shape[2], offset_all.shape[3]
    taps = deformable_groups * kh * kw
    cpg = c_in // deformable_groups

    def samples():
        """(image, tap index in (dg, kh, kw) order, i, oh, ow, channels, y, x, mask)."""
        for b in range(n):
            for g in range(deformable_groups):
                for i in range(kh):
                    for j in range(kw):
                        t = g * kh * kw + i * kw + j
                        for oh in range(h_out):
                            for ow in range(w_out):
                                xx = ow * sw - left + j * dw + offset_all[b, t, oh, ow]
                                yy = oh * sh - top + i * dh + offset_all[b, taps + t, oh, ow]
                                yield (b, t, i * kw + j, oh, ow, slice(g * cpg, (g + 1) * cpg), yy, xx,
                                       offset_all[b, 2 * taps + t, oh, ow])

    return (n, c_in, height, width, kh, kw, h_out, w_out), samples


def _conv_by_kernel_stride(deform_out, weight, bias, kh, kw, groups):
    """conv(deformOut, weight, stride=kernel_size): each output pixel sees exactly its kh x kw block."""
    n, c_in, hk, wk = deform_out.shape
    h_out, w_out = hk // kh, wk // kw
    c_out = weight.shape[0]
    cin_g, cout_g = c_in // groups, c_out // groups
    blocks = deform_out.reshape(n, c_in, h_out, kh, w_out, kw)
    out = np.zeros((n, c_out, h_out, w_out))
    for grp in range(groups):
        w = weight[grp * cout_g:(grp + 1) * cout_g]
        out[:, grp * cout_g:(grp + 1) * cout_g] = np.einsum(
            "ocij,ncpiqj->nopq", w, blocks[:, grp * cin_g:(grp + 1) * cin_g])
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


def cann_forward(x, weight, offset_all, bias, kernel_size, stride, padding, dilation=(1, 1, 1, 1), groups=1,
                 deformable_groups=1, rounding="trunc") -> Tuple[np.ndarray, np.ndarray]:
    """(out, deformOut) in float64, the two outputs of npu_deformable_conv2d (modulated=True)."""
    x, weight, offset_all, bias = map(_np, (x, weight, offset_all, bias))
    (n, c_in, height, width, kh, kw, h_out, w_out), samples = _geometry(
        x, offset_all, kernel_size, stride, padding, dilation, deformable_groups)
    deform = np.zeros((n, c_in, h_out * kh, w_out * kw))
    for b, _, k, oh, ow, chans, yy, xx, m in samples():
        value = np.zeros(chans.stop - chans.start)
        for row, col, w, _, _ in _taps(yy, xx, height, width, rounding):
            value = value + w * x[b, chans, row, col]
        deform[b, chans, oh * kh + k // kw, ow * kw + k % kw] = m * value
    return _conv_by_kernel_stride(deform, weight, bias, kh, kw, groups), deform


def cann_backward(x, grad_out, weight, offset_all, kernel_size, stride, padding, dilation=(1, 1, 1, 1), groups=1,
                  deformable_groups=1, rounding="trunc") -> Dict[str, np.ndarray]:
    """Gradients of sum(out * grad_out) as npu_deformable_conv2dbk returns them: x, weight, the planar
    offset tensor [dx, dy, mask] and bias."""
    x, grad_out, weight, offset_all = map(_np, (x, grad_out, weight, offset_all))
    _, deform = cann_forward(x, weight, offset_all, None, kernel_size, stride, padding, dilation, groups,
                             deformable_groups, rounding)
    (n, c_in, height, width, kh, kw, h_out, w_out), samples = _geometry(
        x, offset_all, kernel_size, stride, padding, dilation, deformable_groups)
    c_out = weight.shape[0]
    cin_g, cout_g = c_in // groups, c_out // groups
    blocks = deform.reshape(n, c_in, h_out, kh, w_out, kw)
    grad_weight = np.zeros_like(weight)
    grad_deform = np.zeros_like(blocks)
    for grp in range(groups):
        outs, ins = slice(grp * cout_g, (grp + 1) * cout_g), slice(grp * cin_g, (grp + 1) * cin_g)
        grad_weight[outs] = np.einsum("nopq,ncpiqj->ocij", grad_out[:, outs], blocks[:, ins])
        grad_deform[:, ins] = np.einsum("ocij,nopq->ncpiqj", weight[outs], grad_out[:, outs])
    grad_deform = grad_deform.reshape(deform.shape)

    taps = deformable_groups * kh * kw
    grad_x = np.zeros_like(x)
    grad_all = np.zeros_like(offset_all)
    for b, t, k, oh, ow, chans, yy, xx, m in samples():
        if not (-1 < yy < height and -1 < xx < width):
            continue                          # outside the open box: no gradient (grad kernel)
        gd = grad_deform[b, chans, oh * kh + k // kw, ow * kw + k % kw]
        value = np.zeros_like(gd)
        d_dy = d_dx = 0.0
        for row, col, w, dwdy, dwdx in _taps(yy, xx, height, width, rounding):
            v = x[b, chans, row, col]
            value = value + w * v
            grad_x[b, chans, row, col] += m * w * gd
            d_dy += dwdy * float(np.dot(gd, v))
            d_dx += dwdx * float(np.dot(gd, v))
        grad_all[b, t, oh, ow] = m * d_dx
        grad_all[b, taps + t, oh, ow] = m * d_dy
        grad_all[b, 2 * taps + t, oh, ow] = float(np.dot(gd, value))
    return {"x": grad_x, "weight": grad_weight, "offset_all": grad_all, "bias": grad_out.sum(axis=(0, 2, 3))}
