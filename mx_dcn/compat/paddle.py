"""Paddle conventions: `paddle.vision.ops.deform_conv2d(x, offset, weight, bias=None, stride=1,
padding=0, dilation=1, deformable_groups=1, groups=1, mask=None, name=None)` and the `DeformConv2D`
layer.

Paddle uses mx_dcn's canonical layout (offset (dg, kh, kw, [dy, dx]), mask used as given) and its
gradient rule. What Paddle adds are checks, kept here so code that runs here also runs on Paddle:
stride/padding/dilation are an int or a list/tuple of exactly two ints, and the number of output
channels must be divisible by deformable_groups (Paddle's DeformableConvInferMeta rejects it otherwise).
Paddle documents float32/float64 only; mx_dcn also runs float16/bfloat16 and does not refuse them.
"""
from __future__ import annotations

import numbers
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .. import functional
from ..problem import check_layer

__all__ = ["deform_conv2d", "DeformConv2D"]

IntOrList = Union[int, Sequence[int]]


def _to_pair(name: str, value: IntOrList) -> Tuple[int, int]:
    """Paddle's convert_to_list(value, 2, name): an int, or a list/tuple of two ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value), int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"{name}: expected an int or a list/tuple of 2 ints ({name}_H, {name}_W), got {value!r}")


def _check(x, weight, deformable_groups, groups) -> None:
    for arg, t in (("x", x), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{arg}: expected a Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{arg}: expected a 4-D tensor, got shape {tuple(t.shape)}")
    for arg, v in (("deformable_groups", deformable_groups), ("groups", groups)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"{arg}: expected a positive int, got {type(v).__name__} {v!r}")
        if v < 1:
            raise ValueError(f"{arg}: expected a positive int, got {v!r}")
    c_out = int(weight.shape[0])
    if c_out % deformable_groups:
        raise ValueError(f"deformable_groups: Paddle requires the number of output channels "
                         f"(weight.shape[0] = {c_out}) to be divisible by deformable_groups, got {deformable_groups}")


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                  bias: Optional[torch.Tensor] = None, stride: IntOrList = 1, padding: IntOrList = 0,
                  dilation: IntOrList = 1, deformable_groups: int = 1, groups: int = 1,
                  mask: Optional[torch.Tensor] = None, name: Optional[str] = None) -> torch.Tensor:
    """paddle.vision.ops.deform_conv2d's signature on mx_dcn: DCNv2 with `mask`, DCNv1 without.
    `name` is accepted and ignored (it names a static-graph variable in Paddle)."""
    stride, padding, dilation = _to_pair("stride", stride), _to_pair("padding", padding), _to_pair("dilation", dilation)
    _check(x, weight, deformable_groups, groups)
    return functional.modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, groups,
                                              deformable_groups)


class DeformConv2D(nn.Module):
    """paddle.vision.ops.DeformConv2D on mx_dcn: `forward(x, offset, mask=None)`, parameters weight
    (out, in/groups, kh, kw) and bias, initialised as Paddle does by default: weight ~ Normal(0, std)
    with std = sqrt(2 / (kh*kw*in_channels)), bias zero. `weight_attr` must be None (Paddle ParamAttr
    objects have no meaning here); `bias_attr=False` removes the bias, as in Paddle."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrList, stride: IntOrList = 1,
                 padding: IntOrList = 0, dilation: IntOrList = 1, deformable_groups: int = 1, groups: int = 1,
                 weight_attr=None, bias_attr=None):
        super().__init__()
        if weight_attr is not None:
            raise ValueError(f"weight_attr: only None is supported (got {weight_attr!r}); initialise "
                             "the weight in torch instead")
        if bias_attr not in (None, False):
            raise ValueError(f"bias_attr: only None or False are supported, got {bias_attr!r}")
        check_layer(in_channels, out_channels, _to_pair("kernel_size", kernel_size), _to_pair("stride", stride),
                    _to_pair("padding", padding), _to_pair("dilation", dilation), groups, deformable_groups)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _to_pair("kernel_size", kernel_size)
        self.stride, self.padding = _to_pair("stride", stride), _to_pair("padding", padding)
        self.dilation = _to_pair("dilation", dilation)
        self.deformable_groups, self.groups = deformable_groups, groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias_attr is False:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = (2.0 / (self.kernel_size[0] * self.kernel_size[1] * self.in_channels)) ** 0.5
        nn.init.normal_(self.weight, 0.0, std)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation,
                             self.deformable_groups, self.groups, mask)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"deformable_groups={self.deformable_groups}, groups={self.groups}, "
                f"bias={self.bias is not None}")
