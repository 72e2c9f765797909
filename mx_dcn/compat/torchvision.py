"""torchvision.ops conventions: `deform_conv2d(input, offset, weight, bias=None, stride=(1, 1),
padding=(0, 0), dilation=(1, 1), mask=None)` and the `DeformConv2d` layer.

The layout is mx_dcn's canonical one (offset channels (dg, kh, kw, [dy, dx]), mask used as given);
what differs is that torchvision has no `groups` / `deformable_groups` arguments: it infers
groups = C_in // weight.shape[1] and offset groups = offset.shape[1] // (2*kh*kw), as done here.

Gradients follow mx_dcn's rule (mmcv's and Paddle's): a sample outside the open box (-1, H) x (-1, W)
contributes nothing. torchvision differs only for samples exactly at -1.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
from torch import nn

from .. import functional
from ..problem import check_layer

__all__ = ["deform_conv2d", "DeformConv2d", "infer_groups"]

IntOrPair = Union[int, Tuple[int, int]]


def infer_groups(input: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor) -> Tuple[int, int]:
    """(groups, offset_groups) from the shapes, as torchvision does; errors name the argument."""
    for name, t in (("input", input), ("offset", offset), ("weight", weight)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name}: expected a 4-D tensor, got shape {tuple(t.shape)}")
    c_in, c_per_group = int(input.shape[1]), int(weight.shape[1])
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    if c_per_group < 1 or c_in % c_per_group:
        raise ValueError(f"weight: expected shape[1] (C_in/groups) to divide input's C_in={c_in}, got "
                         f"{c_per_group} (weight shape {tuple(weight.shape)})")
    per_group = 2 * kh * kw
    if per_group < 2 or offset.shape[1] == 0 or offset.shape[1] % per_group:
        raise ValueError(f"offset: expected shape[1] to be a positive multiple of 2*kh*kw = {per_group} "
                         f"(2 * offset_groups * kh * kw), got {int(offset.shape[1])}")
    return c_in // c_per_group, int(offset.shape[1]) // per_group


def deform_conv2d(input: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                  bias: Optional[torch.Tensor] = None, stride: IntOrPair = (1, 1),
                  padding: IntOrPair = (0, 0), dilation: IntOrPair = (1, 1),
                  mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """torchvision.ops.deform_conv2d's signature on mx_dcn: DCNv2 when `mask` is given, else DCNv1."""
    groups, offset_groups = infer_groups(input, offset, weight)
    return functional.modulated_deform_conv2d(input, offset, mask, weight, bias, stride, padding, dilation,
                                              groups, offset_groups)


class DeformConv2d(nn.Module):
    """torchvision.ops.DeformConv2d on mx_dcn: same constructor, parameters (weight, bias), init and
    forward(input, offset, mask=None), so a torchvision state dict loads unchanged. The number of
    offset groups is inferred from the offset's shape at each call."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1, bias: bool = True):
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = check_layer(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torchvision's (and nn.Conv2d's) default initialisation.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: torch.Tensor, offset: torch.Tensor,
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return deform_conv2d(input, offset, self.weight, self.bias, stride=self.stride, padding=self.padding,
                             dilation=self.dilation, mask=mask)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")
