"""The model tests/test_onnx.py exports (also from a fresh process that imports only this and mx_dcn.nn)."""
import torch

from mx_dcn import nn as dnn


class Head(torch.nn.Module):
    """Three mx_dcn layers with different settings, some with bias, some without, DCNv2 and DCNv1."""

    def __init__(self):
        super().__init__()
        self.a = dnn.ModulatedDeformConv2dPack(4, 6, 3, stride=2, padding=(1, 2), dilation=(1, 2), groups=2,
                                               deform_groups=2)
        self.b = dnn.DeformConv2dPack(6, 6, (3, 1), padding=(1, 0), deform_groups=3)
        self.c = dnn.ModulatedDeformConv2dPack(6, 3, 1, bias=False)
        torch.manual_seed(0)
        with torch.no_grad():  # real deformation, so a wrong layout or attribute shows
            for layer in (self.a, self.b, self.c):
                layer.conv_offset.weight.normal_(0, 0.1)
                layer.conv_offset.bias.normal_(0, 0.7)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))
