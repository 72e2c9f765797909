"""Offset/mask layout converters between mx_dcn's canonical layout and other systems'.

Canonical (mx_driving, mmcv, torchvision, Paddle, ONNX): offset (N, 2*T, Ho, Wo) with channel
2*t + 0 = dy (row) and 2*t + 1 = dx (column) of sample t, and mask (N, T, Ho, Wo), where
t = g*kh*kw + i*kw + j runs over (deformable group g, tap i, j) and T = dg*kh*kw.

CANN / torch_npu `npu_deformable_conv2d` and MindSpore `ops.deformable_conv2d` take ONE tensor
(N, 3*T, Ho, Wo), planar: [dx of every t, dy of every t, mask of every t] -- x first. The two systems
use the same order, so the MindSpore converters are the CANN ones under their own names.

All functions are pure torch indexing (differentiable, any device) and check their shapes.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch


def _check_4d(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 4:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name}: expected a 4-D tensor (N, C, H_out, W_out), got {shape}")


def canonical_to_cann(offset: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(offset (N, 2T, Ho, Wo) [dy, dx] interleaved, mask (N, T, Ho, Wo) or None) ->
    (N, 3T, Ho, Wo) planar [dx..., dy..., mask...]. A missing mask (DCNv1) becomes ones."""
    _check_4d("offset", offset)
    if offset.shape[1] % 2:
        raise ValueError(f"offset: expected an even channel count 2*T, got {offset.shape[1]}")
    taps = offset.shape[1] // 2
    if mask is None:
        mask = offset.new_ones(offset.shape[0], taps, offset.shape[2], offset.shape[3])
    _check_4d("mask", mask)
    expected = (offset.shape[0], taps, offset.shape[2], offset.shape[3])
    if tuple(mask.shape) != expected:
        raise ValueError(f"mask: expected shape {expected} to match offset {tuple(offset.shape)}, got {tuple(mask.shape)}")
    return torch.cat([offset[:, 1::2], offset[:, 0::2], mask], dim=1)


def cann_to_canonical(offset_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(N, 3T, Ho, Wo) planar [dx..., dy..., mask...] -> (offset (N, 2T, Ho, Wo) [dy, dx] interleaved,
    mask (N, T, Ho, Wo))."""
    _check_4d("offset_mask", offset_mask)
    if offset_mask.shape[1] % 3:
        raise ValueError(f"offset_mask: expected a channel count 3*T, got {offset_mask.shape[1]}")
    dx, dy, mask = offset_mask.chunk(3, dim=1)
    n, taps, ho, wo = dx.shape
    offset = torch.stack([dy, dx], dim=2).reshape(n, 2 * taps, ho, wo)
    return offset, mask


def canonical_to_mindspore(offset: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """MindSpore's `offsets` ((dx, dy, mask), dg, kh, kw) -- the same order as CANN's."""
    return canonical_to_cann(offset, mask)


def mindspore_to_canonical(offsets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """MindSpore's `offsets` -> canonical (offset, mask)."""
    return cann_to_canonical(offsets)
