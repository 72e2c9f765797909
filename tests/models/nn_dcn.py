"""A BEV-style neck built from mx_dcn.nn layers (mmcv's 'DCNv2' and 'DCN'), plus one functional call.

On Atlas A2 (`--device npu --soc Ascend910B2`): `lateral.dcn` (c_in 64) and `fuse` (c_in 128) meet the
AscendC constraints; `offsets.v1` has deformable groups 2, and the root module's own forward calls the
functional API with c_in 96 -- both fall back.

    mx-dcn check --model tests.models.nn_dcn:build --input-shape 2,64,32,32 --device npu --soc Ascend910B2
"""
import torch
from torch import nn

import mx_dcn
from mx_dcn.nn import DeformConv2dPack, ModulatedDeformConv2dPack


class Lateral(nn.Module):
    def __init__(self):
        super().__init__()
        self.dcn = ModulatedDeformConv2dPack(64, 128, 3, padding=1)       # c_in 64: AscendC
        self.norm = nn.BatchNorm2d(128)

    def forward(self, x):
        return torch.relu(self.norm(self.dcn(x)))


class Neck(nn.Module):
    def __init__(self):
        super().__init__()
        self.lateral = Lateral()
        self.fuse = ModulatedDeformConv2dPack(128, 128, 3, stride=2, padding=1)  # c_in 128: AscendC
        self.offsets = nn.ModuleDict({"v1": DeformConv2dPack(128, 96, 3, padding=1, deform_groups=2)})
        self.out_weight = nn.Parameter(torch.randn(32, 96, 1, 1) / 96 ** 0.5)

    def forward(self, x):
        y = self.offsets["v1"](self.fuse(self.lateral(x)))          # deform_groups 2: falls back
        n, _, h, w = y.shape
        zero = y.new_zeros(n, 2, h, w)                              # a 1x1 DCNv1 with zero offsets
        return mx_dcn.deform_conv2d(y, zero, self.out_weight)        # c_in 96: falls back


def build() -> nn.Module:
    torch.manual_seed(0)
    return Neck()
