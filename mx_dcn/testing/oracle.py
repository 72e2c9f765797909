"""An independent float64 reference: a direct loop over (image, deformable group, tap, output pixel),
written in NumPy from the definition in docs/design.md and sharing no code with any backend.

It is slow on purpose (clarity over speed) and vectorises only over the channels of one group.
Used by the tests and by `mx-dcn regress` as the ground truth.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np


def _np(t) -> Optional[np.ndarray]:
    if t is None:
        return None
    if hasattr(t, "detach"):
        t = t.detach().to("cpu").double().numpy()
    return np.asarray(t, dtype=np.float64)


def _pair(v):
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _corners(y: float, x: float, height: int, width: int):
    """[(row, col, weight, d weight/dy, d weight/dx)] of the in-image corners of sample (y, x)."""
    if not (-1 < y < height and -1 < x < width):
        return []
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    out = []
    for row, wy, dwy in ((y0, 1 - ly, -1.0), (y0 + 1, ly, 1.0)):
        for col, wx, dwx in ((x0, 1 - lx, -1.0), (x0 + 1, lx, 1.0)):
            if 0 <= row < height and 0 <= col < width:
                out.append((row, col, wy * wx, dwy * wx, wy * dwx))
    return out


def _geometry(x, weight, offset, stride, padding, dilation, deformable_groups):
    n, c_in, height, width = x.shape
    _, _, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    h_out = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cpg = c_in // deformable_groups

    def sample_points():
        """Yield (image, group, tap, ho, wo, channel slice, y, x) for every sample."""
        for b in range(n):
            for g in range(deformable_groups):
                chans = slice(g * cpg, (g + 1) * cpg)
                for i in range(kh):
                    for j in range(kw):
                        k = i * kw + j
                        for ho in range(h_out):
                            for wo in range(w_out):
                                dy = offset[b, 2 * (g * kh * kw + k), ho, wo]
                                dx = offset[b, 2 * (g * kh * kw + k) + 1, ho, wo]
                                y = ho * sh - ph + i * dh + dy
                                xx = wo * sw - pw + j * dw + dx
                                yield b, g, k, ho, wo, chans, y, xx

    return (n, c_in, height, width, kh, kw, h_out, w_out), sample_points


def _columns(x, offset, mask, weight, stride, padding, dilation, deformable_groups):
    """cols[b, c, k, ho, wo] = mask * bilinear sample."""
    (n, c_in, height, width, kh, kw, h_out, w_out), points = _geometry(
        x, weight, offset, stride, padding, dilation, deformable_groups)
    cols = np.zeros((n, c_in, kh * kw, h_out, w_out))
    for b, g, k, ho, wo, chans, y, xx in points():
        m = 1.0 if mask is None else mask[b, g * kh * kw + k, ho, wo]
        value = np.zeros(chans.stop - chans.start)
        for row, col, w, _, _ in _corners(y, xx, height, width):
            value = value + w * x[b, chans, row, col]
        cols[b, chans, k, ho, wo] = m * value
    return cols


def oracle_forward(x, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                   deformable_groups=1) -> np.ndarray:
    """The output (N, C_out, H_out, W_out) in float64. `mask` None means DCNv1."""
    x, offset, mask, weight, bias = map(_np, (x, offset, mask, weight, bias))
    cols = _columns(x, offset, mask, weight, stride, padding, dilation, deformable_groups)
    n, c_in, taps, h_out, w_out = cols.shape
    c_out = weight.shape[0]
    cin_g, cout_g = c_in // groups, c_out // groups
    out = np.zeros((n, c_out, h_out, w_out))
    for grp in range(groups):
        w_g = weight[grp * cout_g:(grp + 1) * cout_g].reshape(cout_g, cin_g * taps)
        c_g = cols[:, grp * cin_g:(grp + 1) * cin_g].reshape(n, cin_g * taps, h_out * w_out)
        out[:, grp * cout_g:(grp + 1) * cout_g] = np.einsum("ok,nkl->nol", w_g, c_g).reshape(
            n, cout_g, h_out, w_out)
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out


def oracle_backward(x, offset, mask, weight, bias, grad_out, stride=1, padding=0, dilation=1,
                    groups=1, deformable_groups=1) -> Dict[str, Optional[np.ndarray]]:
    """Gradients of sum(out * grad_out) w.r.t. x, offset, mask, weight, bias (None where absent)."""
    x, offset, mask, weight, bias, grad_out = map(_np, (x, offset, mask, weight, bias, grad_out))
    cols = _columns(x, offset, mask, weight, stride, padding, dilation, deformable_groups)
    n, c_in, taps, h_out, w_out = cols.shape
    c_out = weight.shape[0]
    cin_g, cout_g = c_in // groups, c_out // groups

    grad_weight = np.zeros_like(weight)
    grad_cols = np.zeros_like(cols)
    g_out = grad_out.reshape(n, c_out, h_out * w_out)
    for grp in range(groups):
        outs = slice(grp * cout_g, (grp + 1) * cout_g)
        ins = slice(grp * cin_g, (grp + 1) * cin_g)
        c_g = cols[:, ins].reshape(n, cin_g * taps, h_out * w_out)
        grad_weight[outs] = np.einsum("nol,nkl->ok", g_out[:, outs], c_g).reshape(cout_g, cin_g, *weight.shape[2:])
        w_g = weight[outs].reshape(cout_g, cin_g * taps)
        grad_cols[:, ins] = np.einsum("ok,nol->nkl", w_g, g_out[:, outs]).reshape(n, cin_g, taps, h_out, w_out)

    (_, _, height, width, kh, kw, _, _), points = _geometry(
        x, weight, offset, stride, padding, dilation, deformable_groups)
    grad_x = np.zeros_like(x)
    grad_offset = np.zeros_like(offset)
    grad_mask = None if mask is None else np.zeros_like(mask)
    for b, g, k, ho, wo, chans, y, xx in points():
        m_index = g * kh * kw + k
        m = 1.0 if mask is None else mask[b, m_index, ho, wo]
        gc = grad_cols[b, chans, k, ho, wo]
        value = np.zeros_like(gc)
        d_dy = d_dx = 0.0
        for row, col, w, dwdy, dwdx in _corners(y, xx, height, width):
            v = x[b, chans, row, col]
            value = value + w * v
            grad_x[b, chans, row, col] += m * w * gc
            d_dy += dwdy * float(np.dot(gc, v))
            d_dx += dwdx * float(np.dot(gc, v))
        grad_offset[b, 2 * m_index, ho, wo] = m * d_dy
        grad_offset[b, 2 * m_index + 1, ho, wo] = m * d_dx
        if grad_mask is not None:
            grad_mask[b, m_index, ho, wo] = float(np.dot(gc, value))
    grad_bias = None if bias is None else grad_out.sum(axis=(0, 2, 3))
    return {"x": grad_x, "offset": grad_offset, "mask": grad_mask, "weight": grad_weight, "bias": grad_bias}
