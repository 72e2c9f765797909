"""Layers: mmcv-compatible modules (drop-in for mmcv.ops.ModulatedDeformConv2d / 'DCNv2' /
DeformConv2d / 'DCN') and torchvision's DeformConv2d (as `TVDeformConv2d`).

Constructor arguments, defaults, parameter names and initialisation follow mmcv, so a model built with
these layers loads an mmcv checkpoint unchanged (legacy key names included, see
`ModulatedDeformConv2dPack._load_from_state_dict`). Every forward goes through the public operator
(`mx_dcn.modulated_deform_conv2d` / `mx_dcn.deform_conv2d`), so the backend registry picks the kernel;
`layer.explain(x)` tells which one a given input would get, without running anything.

Differences from mmcv, on purpose:
- `bias=True` is accepted by DeformConv2d / DeformConv2dPack (mmcv asserts it is False);
- mmcv's DeformConv2d zero-pads an input smaller than the kernel to work around a CUDA assert; here
  the operator takes such inputs directly (same values) and a call whose output would be empty is a
  ValueError naming the sizes.
"""
from __future__ import annotations

import math
import warnings
from typing import Optional, Tuple, Union

import torch
from torch import nn
from torch.nn.modules.utils import _single

from . import functional
from .problem import check_layer
from .compat.torchvision import DeformConv2d as TVDeformConv2d

__all__ = ["ModulatedDeformConv2d", "ModulatedDeformConv2dPack", "DeformConv2d", "DeformConv2dPack",
           "TVDeformConv2d", "DCNv2", "DCN"]

IntOrPair = Union[int, Tuple[int, int]]


def _bias_flag(bias) -> bool:
    """mmcv takes bool or 'auto'. ConvModule resolves 'auto' before building the layer; a layer given
    'auto' directly has a bias, as in mmcv (its `if bias:` sees a non-empty string)."""
    if isinstance(bias, bool):
        return bias
    if bias == "auto":
        return True
    raise TypeError(f"bias: expected True, False or 'auto', got {bias!r}")


def _deform_groups(cls_name: str, deform_groups: int, kwargs: dict) -> int:
    """`deformable_groups` is mmcv's deprecated spelling of `deform_groups`; accept it with a warning."""
    if "deformable_groups" in kwargs:
        value = kwargs.pop("deformable_groups")
        if deform_groups != 1 and deform_groups != value:
            raise TypeError(f"{cls_name}: got both deform_groups={deform_groups} and "
                            f"deformable_groups={value}; pass only deform_groups")
        warnings.warn(f"{cls_name}: 'deformable_groups' is deprecated, use 'deform_groups' instead",
                      DeprecationWarning, stacklevel=3)
        deform_groups = value
    if kwargs:
        raise TypeError(f"{cls_name}.__init__() got unexpected keyword arguments {sorted(kwargs)}")
    return deform_groups


def _match_offset_dtype(x, offset, mask, weight, bias):
    """mmcv's mixed-precision rule: under autocast the offset conv yields half precision while x and
    the parameters stay float32; the offset's dtype decides, the others are cast to it. Outside
    autocast nothing is cast, so mismatched dtypes are the operator's clear TypeError."""
    try:
        autocast = torch.is_autocast_enabled(offset.device.type)
    except RuntimeError:  # a device type autocast does not know (meta, for model checks)
        autocast = False
    if not autocast:
        return x, mask, weight, bias
    dt = offset.dtype
    cast = lambda t: t if t is None or t.dtype == dt else t.to(dt)
    return cast(x), cast(mask), cast(weight), cast(bias)


def _meta_like(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if t is None else torch.empty(t.shape, dtype=t.dtype, device="meta")


class _DeformBase(nn.Module):
    """What the four mmcv-style layers share: settings, weight/bias, repr, and `explain`."""

    _modulated = True

    def _setup(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
               deform_groups, bias):
        self.kernel_size, self.stride, self.padding, self.dilation = check_layer(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, deform_groups,
            "deform_groups")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.deform_groups = deform_groups
        # Attributes nn.Conv2d has, which mmcv sets so code that inspects convolutions keeps working.
        self.transposed = False
        self.output_padding = _single(0)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if _bias_flag(bias):
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)

    @property
    def deformable_groups(self) -> int:
        """mx_driving / Paddle spelling of `deform_groups`."""
        return self.deform_groups

    def _offset_shapes(self, x: torch.Tensor):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        n, _, h, w = x.shape
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        taps = self.deform_groups * kh * kw
        return (n, 2 * taps, ho, wo), (n, taps, ho, wo)

    def explain(self, x: torch.Tensor, *, device: Optional[str] = None, soc: Optional[str] = None):
        """The backend selection report (`mx_dcn.explain`) for this layer applied to `x`; runs nothing.
        `x` may be a meta tensor or just carry the shape; `device`/`soc` declare another target."""
        if x.dim() != 4:
            raise ValueError(f"x: expected a 4-D tensor (N, C_in, H, W), got shape {tuple(x.shape)}")
        offset_shape, mask_shape = self._offset_shapes(x)
        meta = dict(dtype=x.dtype, device="meta")
        return functional.explain(
            torch.empty(x.shape, **meta), torch.empty(offset_shape, **meta),
            torch.empty(mask_shape, **meta) if self._modulated else None,
            _meta_like(self.weight).to(x.dtype), None if self.bias is None else _meta_like(self.bias).to(x.dtype),
            self.stride, self.padding, self.dilation, self.groups, self.deform_groups,
            device=device if device is not None or x.device.type == "meta" else x.device.type, soc=soc)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, deform_groups={self.deform_groups}, bias={self.bias is not None}")


class ModulatedDeformConv2d(_DeformBase):
    """mmcv.ops.ModulatedDeformConv2d: DCNv2 taking the offset and mask as inputs.

    `forward(x, offset, mask)`: offset (N, 2*dg*kh*kw, Ho, Wo) ordered (dg, kh, kw, [dy, dx]);
    mask (N, dg*kh*kw, Ho, Wo), used as given. Parameters `weight` (out, in/groups, kh, kw) and `bias`.
    Init as mmcv: weight uniform in +-1/sqrt(in_channels*kh*kw), bias zero.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1, deform_groups: int = 1,
                 bias: Union[bool, str] = True, **kwargs):
        super().__init__()
        deform_groups = _deform_groups(type(self).__name__, deform_groups, kwargs)
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    deform_groups, bias)
        self.init_weights()

    def init_weights(self) -> None:
        # mmcv's choice: fan over all input channels (not in/groups).
        stdv = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        with torch.no_grad():
            self.weight.uniform_(-stdv, stdv)
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x, mask, weight, bias = _match_offset_dtype(x, offset, mask, self.weight, self.bias)
        return functional.modulated_deform_conv2d(x, offset, mask, weight, bias, self.stride, self.padding,
                                                  self.dilation, self.groups, self.deform_groups)


def _rename_legacy_keys(state_dict, prefix: str) -> None:
    """Move `<prefix>conv_offset_mask.*` (the attribute name of the original DCNv2 implementations and
    of mmdetection 1.x) to `<prefix>conv_offset.*` when the new keys are absent.

    mmcv also renames a sibling `<parent>.<name>_offset.*` for checkpoints older than version 2; torch
    >= 2 hands each module only the keys under its own prefix, so no module can see a sibling key and
    that rename is not offered (rename such keys before loading)."""
    for suffix in ("weight", "bias"):
        new, old = f"{prefix}conv_offset.{suffix}", f"{prefix}conv_offset_mask.{suffix}"
        if new not in state_dict and old in state_dict:
            state_dict[new] = state_dict.pop(old)


class ModulatedDeformConv2dPack(ModulatedDeformConv2d):
    """mmcv's 'DCNv2': a DCNv2 layer that computes its own offset and mask, used like nn.Conv2d.

    `conv_offset` (a zero-initialised nn.Conv2d with the layer's kernel, stride, padding and dilation)
    outputs 3*dg*kh*kw channels, split o1, o2, m = chunk(3); offset = cat(o1, o2); mask = sigmoid(m).
    Parameters: weight, bias, conv_offset.weight, conv_offset.bias. Checkpoints with the legacy key
    name `conv_offset_mask.*` load too.
    """

    _version = 2
    _offset_parts = 3

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kh, kw = self.kernel_size
        self.conv_offset = nn.Conv2d(self.in_channels, self._offset_parts * self.deform_groups * kh * kw,
                                     kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                                     dilation=self.dilation, bias=True)
        self.init_weights()

    def init_weights(self) -> None:
        super().init_weights()
        if hasattr(self, "conv_offset"):
            nn.init.zeros_(self.conv_offset.weight)
            nn.init.zeros_(self.conv_offset.bias)

    def offset_and_mask(self, x: torch.Tensor):
        """The (offset, mask) this layer feeds the operator for input x."""
        o1, o2, m = torch.chunk(self.conv_offset(x), 3, dim=1)
        return torch.cat((o1, o2), dim=1), torch.sigmoid(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        offset, mask = self.offset_and_mask(x)
        return super().forward(x, offset, mask)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        _rename_legacy_keys(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


class DeformConv2d(_DeformBase):
    """mmcv.ops.DeformConv2d: DCNv1 taking the offset as input; `forward(x, offset)`.

    Defaults as mmcv: bias=False, im2col_step=32 (accepted, unused: mx_dcn sizes its chunks from the
    workspace budget). Init as mmcv: kaiming_uniform_(weight, nonlinearity='relu').
    """

    _modulated = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1, deform_groups: int = 1,
                 bias: Union[bool, str] = False, im2col_step: int = 32, **kwargs):
        super().__init__()
        deform_groups = _deform_groups(type(self).__name__, deform_groups, kwargs)
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    deform_groups, bias)
        self.im2col_step = im2col_step
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, nonlinearity="relu")
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        x, _, weight, bias = _match_offset_dtype(x, offset, None, self.weight, self.bias)
        return functional.deform_conv2d(x, offset, weight, self.stride, self.padding, self.dilation,
                                        self.groups, self.deform_groups, False if bias is None else bias,
                                        self.im2col_step)


class DeformConv2dPack(DeformConv2d):
    """mmcv's 'DCN': a DCNv1 layer that computes its own offset with a zero-initialised `conv_offset`
    (2*dg*kh*kw output channels, used directly as the canonical (dg, kh, kw, [dy, dx]) offset)."""

    _version = 2

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kh, kw = self.kernel_size
        self.conv_offset = nn.Conv2d(self.in_channels, 2 * self.deform_groups * kh * kw,
                                     kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                                     dilation=self.dilation, bias=True)
        self.init_offset()

    def init_offset(self) -> None:
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x, self.conv_offset(x))



# mmcv's registry names.
DCNv2 = ModulatedDeformConv2dPack
DCN = DeformConv2dPack
