"""MindSpore conventions: `mindspore.ops.deformable_conv2d(x, weight, offsets, kernel_size, strides,
padding, bias=None, dilations=(1, 1, 1, 1), groups=1, deformable_groups=1, modulated=True)`.

- `offsets` is one tensor (N, 3*dg*kh*kw, Ho, Wo) holding the x offsets, the y offsets and the mask,
  channels ordered ((dx, dy, mask), dg, kh, kw) -- x first, unlike mx_dcn's canonical (dg, kh, kw,
  [dy, dx]). The mask is used as given (no sigmoid), as MindSpore does.
- `strides` = (1, 1, sh, sw) and `dilations` = (1, 1, dh, dw) in NCHW order: the N and C entries must
  be 1; `padding` = (top, bottom, left, right).
- Asymmetric padding is supported exactly: samples are placed with the top/left padding (as in
  MindSpore), the output size counts both sides. Extra bottom/right padding becomes zero rows/columns
  appended to the input (a sample there reads zeros, as outside the image); less bottom/right than
  top/left padding is computed with top/left on both sides and the surplus output rows dropped.
- `modulated=False` (DCNv1) ignores the mask third of `offsets`. MindSpore itself only supports True.
"""
from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .. import functional
from ..layouts import canonical_to_mindspore, mindspore_to_canonical

__all__ = ["deformable_conv2d", "canonical_to_mindspore", "mindspore_to_canonical"]


def _ints(name: str, value, length: int, minimum: int) -> Tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) != length or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{name}: expected a tuple of {length} ints, got {value!r}")
    if any(v < minimum for v in value):
        raise ValueError(f"{name}: expected every value >= {minimum}, got {tuple(value)}")
    return tuple(int(v) for v in value)


def _nchw4(name: str, value: Sequence[int]) -> Tuple[int, int]:
    """(1, 1, h, w) in NCHW order -> (h, w); the N and C entries must be 1, as MindSpore requires."""
    v = _ints(name, value, 4, 1)
    if v[0] != 1 or v[1] != 1:
        raise ValueError(f"{name}: expected (1, 1, {name}_h, {name}_w) with the N and C entries set to 1, "
                         f"got {v}")
    return v[2], v[3]


def _out_size(size: int, before: int, after: int, k: int, s: int, d: int) -> int:
    return (size + before + after - d * (k - 1) - 1) // s + 1


def deformable_conv2d(x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor, kernel_size,
                      strides, padding, bias: Optional[torch.Tensor] = None, dilations=(1, 1, 1, 1),
                      groups: int = 1, deformable_groups: int = 1, modulated: bool = True) -> torch.Tensor:
    """mindspore.ops.deformable_conv2d's signature and conventions on mx_dcn."""
    for arg, t in (("x", x), ("weight", weight), ("offsets", offsets)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{arg}: expected a Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{arg}: expected a 4-D tensor (NCHW), got shape {tuple(t.shape)}")
    if isinstance(kernel_size, numbers.Integral) and not isinstance(kernel_size, bool):
        kernel_size = (kernel_size, kernel_size)
    kh, kw = _ints("kernel_size", kernel_size, 2, 1)
    if (kh, kw) != tuple(weight.shape[2:]):
        raise ValueError(f"kernel_size: expected the weight's kernel {tuple(weight.shape[2:])}, got {(kh, kw)}")
    sh, sw = _nchw4("strides", strides)
    dh, dw = _nchw4("dilations", dilations)
    top, bottom, left, right = _ints("padding", padding, 4, 0)
    if not isinstance(modulated, bool):
        raise TypeError(f"modulated: expected a bool, got {modulated!r}")
    if not isinstance(deformable_groups, numbers.Integral) or isinstance(deformable_groups, bool) \
            or deformable_groups < 1:
        raise ValueError(f"deformable_groups: expected a positive int, got {deformable_groups!r}")

    n, _, h, w = (int(v) for v in x.shape)
    ho, wo = _out_size(h, top, bottom, kh, sh, dh), _out_size(w, left, right, kw, sw, dw)
    if ho < 1 or wo < 1:
        raise ValueError(f"x: spatial size {h}x{w} is too small for kernel {kh}x{kw} with padding "
                         f"{(top, bottom, left, right)} and dilations {(dh, dw)}: output would be {ho}x{wo}")
    expected = (n, 3 * deformable_groups * kh * kw, ho, wo)
    if tuple(offsets.shape) != expected:
        raise ValueError(f"offsets: expected shape {expected} = (N, 3*deformable_groups*kh*kw, H_out, W_out), "
                         f"got {tuple(offsets.shape)}")

    offset, mask = mindspore_to_canonical(offsets)
    if not modulated:
        mask = None
    if (top, left) == (bottom, right):
        return functional.modulated_deform_conv2d(x, offset, mask, weight, bias, (sh, sw), (top, left),
                                                  (dh, dw), groups, deformable_groups)

    # Asymmetric: place samples with top/left padding on both sides; append zero rows/columns for
    # extra bottom/right padding; crop surplus output rows/columns when bottom/right is smaller.
    extra_h, extra_w = max(bottom - top, 0), max(right - left, 0)
    if extra_h or extra_w:
        x = F.pad(x, (0, extra_w, 0, extra_h))
    ho2 = _out_size(h + extra_h, top, top, kh, sh, dh)
    wo2 = _out_size(w + extra_w, left, left, kw, sw, dw)
    if (ho2, wo2) != (ho, wo):
        grow = (0, wo2 - wo, 0, ho2 - ho)
        offset = F.pad(offset, grow)
        mask = None if mask is None else F.pad(mask, grow)
    out = functional.modulated_deform_conv2d(x, offset, mask, weight, bias, (sh, sw), (top, left), (dh, dw),
                                             groups, deformable_groups)
    return out[:, :, :ho, :wo]
