"""A small detector-like model with three deformable convolutions called through the functional API.

On Atlas A2 (`--device npu --soc Ascend910B2`) the layers `backbone.0` and `head.dcn` (c_in 64) meet
the AscendC kernel's constraints; `neck` has c_in 96, which is not a multiple of 64, so it falls back.

    mx-dcn check --model tests.models.three_dcn:build --input-shape 1,3,64,64 --device npu --soc Ascend910B2
"""
import torch
from torch import nn

import mx_dcn


class DeformBlock(nn.Module):
    """mmcv's DCNv2 recipe written out: a conv predicts offsets and mask, the op does the rest."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.conv_offset = nn.Conv2d(c_in, 3 * 9, 3, stride, 1)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3) / (9 * c_in) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x):
        o1, o2, m = torch.chunk(self.conv_offset(x), 3, dim=1)
        return mx_dcn.modulated_deform_conv2d(x, torch.cat([o1, o2], dim=1), torch.sigmoid(m), self.weight,
                                              self.bias, stride=self.stride, padding=1)


class Head(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.dcn = DeformBlock(c_in, c_out)
        self.cls = nn.Conv2d(c_out, 10, 1)

    def forward(self, x):
        return self.cls(torch.relu(self.dcn(x)))


class ThreeDCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 3, 2, 1)
        self.backbone = nn.Sequential(DeformBlock(64, 64), nn.ReLU())   # c_in 64: AscendC
        self.neck = DeformBlock(64, 96, stride=2)                       # c_in 64 -> 96: AscendC
        self.head = Head(96, 64)                                        # c_in 96: falls back

    def forward(self, x):
        return self.head(torch.relu(self.neck(self.backbone(self.stem(x)))))


def build() -> nn.Module:
    torch.manual_seed(0)
    return ThreeDCN()
