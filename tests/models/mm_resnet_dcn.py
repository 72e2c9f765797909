"""A small ResNet with DCNv2 built the mmdet way (mmcv's build_conv_layer from a `dcn` config), for the
OpenMMLab integration tests and `mx-dcn check --model/--config`. Needs mmengine + mmcv (no compiled ops)
and mx_dcn.use_in_mmcv() before it is built, as a training script would call it.

On Atlas A2: `layer1.0.conv2` (c_in 64) meets the AscendC constraints; `layer2.0.conv2` (c_in 16) does
not (c_in_multiple_of_64) and falls back.

    mx-dcn check --model tests.models.mm_resnet_dcn:build_with_inputs --device npu --soc Ascend910B2
"""
import torch
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.registry import MODELS
from torch import nn

DCN = dict(type="DCNv2", deform_groups=1, fallback_on_stride=False)


class Bottleneck(nn.Module):
    """A ResNet bottleneck built the way mmdet's ResNet builds it: convolutions through
    build_conv_layer (conv2 from the `dcn` config unless it falls back on stride), norms through
    build_norm_layer under the names norm1..norm3, a 1x1 projection when the shape changes."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dcn=None, norm_cfg=dict(type="BN")):
        super().__init__()
        with_dcn = dcn is not None and not (dcn.get("fallback_on_stride", False) and stride > 1)
        dcn = {k: v for k, v in (dcn or {}).items() if k != "fallback_on_stride"}
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, planes, postfix=1)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, planes, postfix=2)
        self.norm3_name, norm3 = build_norm_layer(norm_cfg, planes * self.expansion, postfix=3)
        self.conv1 = build_conv_layer(None, inplanes, planes, 1, bias=False)
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(dcn if with_dcn else None, planes, planes, 3, stride=stride, padding=1,
                                      bias=False)
        self.add_module(self.norm2_name, norm2)
        self.conv3 = build_conv_layer(None, planes, planes * self.expansion, 1, bias=False)
        self.add_module(self.norm3_name, norm3)
        self.downsample = None
        if stride != 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(
                build_conv_layer(None, inplanes, planes * self.expansion, 1, stride=stride, bias=False),
                build_norm_layer(norm_cfg, planes * self.expansion)[1])

    def forward(self, x):
        out = torch.relu(getattr(self, self.norm1_name)(self.conv1(x)))
        out = torch.relu(getattr(self, self.norm2_name)(self.conv2(out)))
        out = getattr(self, self.norm3_name)(self.conv3(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


@MODELS.register_module(force=True)
class TinyResNetDCN(nn.Module):
    """stem -> layer1 (DCN, c_in 64) -> layer2 (DCN, c_in 16, stride 2). forward takes the image
    tensor, or mmdet3d-style a dict with 'imgs'; returns both stages' features."""

    def __init__(self, dcn=DCN):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.layer1 = nn.Sequential(Bottleneck(64, 64, dcn=dcn))
        self.layer2 = nn.Sequential(Bottleneck(256, 16, stride=2, dcn=dcn))

    def forward(self, inputs):
        x = inputs["imgs"] if isinstance(inputs, dict) else inputs
        c1 = self.layer1(self.stem(x))
        return [c1, self.layer2(c1)]


def build():
    torch.manual_seed(0)
    return TinyResNetDCN()


def build_with_inputs():
    """(model, example_inputs): the one positional argument is a dict, as mmdet3d detectors take."""
    return build(), ({"imgs": torch.randn(2, 3, 32, 32)},)
