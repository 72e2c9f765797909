"""mx_dcn.nn: mmcv-compatible layers and torchvision's DeformConv2d -- constructor, init, parameter
names, checkpoints written with mmcv's naming (current and legacy), forward against the manual
computation and the float64 oracle."""
import math
import warnings
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mx_dcn
from mx_dcn import nn as dnn
from mx_dcn.compat import torchvision as tv
from mx_dcn.testing.oracle import oracle_forward

from conftest import assert_close_to

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # backend fallback notices


def _g(seed):
    return torch.Generator().manual_seed(seed)


def _mmcv_dcnv2_state(prefix, cin, cout, k, dg, bias=True, offset_key="conv_offset", seed=0):
    """A state dict written by hand with mmcv's parameter naming (no mmcv needed)."""
    g = _g(seed)
    sd = OrderedDict()
    sd[prefix + "weight"] = torch.randn(cout, cin, k, k, generator=g, dtype=torch.float64) * 0.3
    if bias:
        sd[prefix + "bias"] = torch.randn(cout, generator=g, dtype=torch.float64)
    sd[prefix + offset_key + ".weight"] = torch.randn(3 * dg * k * k, cin, k, k, generator=g, dtype=torch.float64) * 0.2
    sd[prefix + offset_key + ".bias"] = torch.randn(3 * dg * k * k, generator=g, dtype=torch.float64) * 0.5
    return sd


def _manual_dcnv2(x, w, b, ow, ob, stride, padding, dilation, groups, dg):
    """mmcv's DCNv2 forward written out: conv_offset, chunk/cat/sigmoid, then the operator."""
    out = F.conv2d(x, ow, ob, stride, padding, dilation)
    o1, o2, m = torch.chunk(out, 3, dim=1)
    offset, mask = torch.cat((o1, o2), 1), torch.sigmoid(m)
    return offset, mask, mx_dcn.modulated_deform_conv2d(x, offset, mask, w, b, stride, padding, dilation,
                                                        groups, dg)


class Holder(nn.Module):
    """A parent module, so the layer's keys carry a prefix like in a real detector."""

    def __init__(self, layer):
        super().__init__()
        self.neck = nn.Module()
        self.neck.dcn = layer


@pytest.mark.parametrize("offset_key", ["conv_offset", "conv_offset_mask"])
@pytest.mark.parametrize("bias", [True, False])
def test_mmcv_checkpoint_loads_and_matches_manual(offset_key, bias):
    cin, cout, k, dg = 4, 6, 3, 2
    model = Holder(dnn.ModulatedDeformConv2dPack(cin, cout, k, stride=1, padding=1, deform_groups=dg,
                                                 bias=bias)).double()
    sd = _mmcv_dcnv2_state("neck.dcn.", cin, cout, k, dg, bias=bias, offset_key=offset_key)
    result = model.load_state_dict(sd, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    names = sorted(n for n, _ in model.named_parameters())
    want = ["neck.dcn.conv_offset.bias", "neck.dcn.conv_offset.weight", "neck.dcn.weight"]
    assert names == sorted(want + (["neck.dcn.bias"] if bias else []))

    x = torch.randn(2, cin, 7, 6, generator=_g(5), dtype=torch.float64)
    got = model.neck.dcn(x)
    p = "neck.dcn."
    offset, mask, manual = _manual_dcnv2(x, sd[p + "weight"], sd.get(p + "bias"), sd[p + offset_key + ".weight"],
                                         sd[p + offset_key + ".bias"], 1, 1, 1, 1, dg)
    assert torch.equal(got, manual)
    # and independently of every backend: the float64 oracle on the same offset/mask
    want = oracle_forward(x, offset, mask, sd[p + "weight"], sd.get(p + "bias"), 1, 1, 1, 1, dg)
    assert_close_to(got, want, torch.float64, "DCNv2 pack vs oracle")
    assert offset.abs().max() > 0.5  # the checkpoint's conv_offset really deforms


def test_legacy_key_with_version_metadata_and_new_key_wins():
    # The rename does not depend on version metadata, and never overwrites a present new key.
    sd = _mmcv_dcnv2_state("", 4, 4, 3, 1, offset_key="conv_offset_mask")
    sd._metadata = {"": {"version": 2}}
    layer = dnn.ModulatedDeformConv2dPack(4, 4, 3, padding=1).double()
    assert layer.load_state_dict(sd).unexpected_keys == []
    assert torch.equal(layer.conv_offset.bias, sd["conv_offset_mask.bias"])
    both = OrderedDict(sd)
    both["conv_offset.weight"] = torch.zeros_like(sd["conv_offset_mask.weight"])
    both["conv_offset.bias"] = torch.zeros_like(sd["conv_offset_mask.bias"])
    result = layer.load_state_dict(both, strict=False)
    assert sorted(result.unexpected_keys) == ["conv_offset_mask.bias", "conv_offset_mask.weight"]
    assert torch.all(layer.conv_offset.weight == 0)


def test_round_trip_own_state_dict():
    a = dnn.ModulatedDeformConv2dPack(4, 4, 3, padding=1)
    with torch.no_grad():
        a.conv_offset.weight.normal_(0, 0.1)
    b = dnn.ModulatedDeformConv2dPack(4, 4, 3, padding=1)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 4, 5, 5, generator=_g(0))
    assert torch.equal(a(x), b(x))


def test_dcnv2_defaults_init_and_identity_at_init():
    layer = dnn.ModulatedDeformConv2dPack(6, 5, 3, padding=1)
    assert (layer.stride, layer.padding, layer.dilation, layer.groups, layer.deform_groups) == \
        ((1, 1), (1, 1), (1, 1), 1, 1)
    assert layer.bias is not None and torch.all(layer.bias == 0)
    assert layer.conv_offset.out_channels == 27 and layer.conv_offset.bias is not None
    assert torch.all(layer.conv_offset.weight == 0) and torch.all(layer.conv_offset.bias == 0)
    bound = 1 / math.sqrt(6 * 9)
    assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > bound / 2
    assert layer.transposed is False and layer.output_padding == (0,)
    # zero offsets and sigmoid(0) = 0.5: the layer is half a dense convolution plus bias
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 6, 7, 8, generator=_g(1))
    dense = 0.5 * F.conv2d(x, layer.weight, None, 1, 1) + layer.bias.view(1, -1, 1, 1)
    assert torch.allclose(layer(x), dense, atol=1e-5, rtol=1e-5)


def test_dcnv1_pack_identity_at_init_and_params():
    layer = dnn.DeformConv2dPack(4, 6, 3, stride=2, padding=1, groups=2, deform_groups=2)
    assert layer.bias is None and layer.conv_offset.out_channels == 2 * 2 * 9
    assert sorted(n for n, _ in layer.named_parameters()) == ["conv_offset.bias", "conv_offset.weight", "weight"]
    x = torch.randn(2, 4, 9, 8, generator=_g(2))
    assert torch.allclose(layer(x), F.conv2d(x, layer.weight, None, 2, 1, 1, 2), atol=1e-5, rtol=1e-5)


def test_dcnv1_pack_loads_mmcv_checkpoint_and_matches_oracle():
    g = _g(3)
    sd = OrderedDict(weight=torch.randn(4, 4, 3, 3, generator=g, dtype=torch.float64),
                     **{"conv_offset.weight": torch.randn(18, 4, 3, 3, generator=g, dtype=torch.float64) * 0.2,
                        "conv_offset.bias": torch.randn(18, generator=g, dtype=torch.float64)})
    layer = dnn.DeformConv2dPack(4, 4, 3, padding=1).double()
    result = layer.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = torch.randn(1, 4, 6, 5, generator=g, dtype=torch.float64)
    offset = F.conv2d(x, sd["conv_offset.weight"], sd["conv_offset.bias"], 1, 1)
    assert_close_to(layer(x), oracle_forward(x, offset, None, sd["weight"], None, 1, 1, 1, 1, 1),
                    torch.float64, "DCN pack vs oracle")


def test_modulated_and_v1_modules_take_offsets():
    g = _g(4)
    m = dnn.ModulatedDeformConv2d(4, 3, (3, 1), padding=(1, 0), deform_groups=2).double()
    x = torch.randn(2, 4, 5, 6, generator=g, dtype=torch.float64)
    offset = torch.randn(2, 2 * 2 * 3, 5, 6, generator=g, dtype=torch.float64)
    mask = torch.rand(2, 2 * 3, 5, 6, generator=g, dtype=torch.float64)
    want = oracle_forward(x, offset, mask, m.weight, m.bias, 1, (1, 0), 1, 1, 2)
    assert_close_to(m(x, offset, mask), want, torch.float64, "ModulatedDeformConv2d")
    v1 = dnn.DeformConv2d(4, 3, 3, padding=1, deform_groups=2, bias=True).double()
    assert v1.bias is not None and torch.all(v1.bias == 0)
    with torch.no_grad():
        v1.bias.normal_()
    off = torch.randn(2, 36, 5, 6, generator=g, dtype=torch.float64)
    assert_close_to(v1(x, off), oracle_forward(x, off, None, v1.weight, v1.bias, 1, 1, 1, 1, 2),
                    torch.float64, "DeformConv2d")


def test_deformable_groups_alias_bias_auto_and_errors():
    with pytest.warns(DeprecationWarning, match="deform_groups"):
        m = dnn.ModulatedDeformConv2dPack(4, 4, 3, padding=1, deformable_groups=2)
    assert m.deform_groups == 2 and m.conv_offset.out_channels == 54 and m.deformable_groups == 2
    with pytest.warns(DeprecationWarning):
        assert dnn.DeformConv2dPack(4, 4, 3, deformable_groups=4).conv_offset.out_channels == 72
    with pytest.raises(TypeError, match="deform_groups"):
        dnn.ModulatedDeformConv2d(4, 4, 3, deform_groups=2, deformable_groups=4)
    with pytest.raises(TypeError, match="unexpected keyword"):
        dnn.ModulatedDeformConv2d(4, 4, 3, im2col=1)
    assert dnn.ModulatedDeformConv2d(4, 4, 3, bias="auto").bias is not None
    assert dnn.ModulatedDeformConv2d(4, 4, 3, bias=False).bias is None
    with pytest.raises(TypeError, match="bias"):
        dnn.ModulatedDeformConv2d(4, 4, 3, bias="yes")
    with pytest.raises(ValueError, match="groups"):
        dnn.ModulatedDeformConv2dPack(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="deform_groups"):
        dnn.DeformConv2dPack(4, 6, 3, deform_groups=3)
    assert dnn.DCNv2 is dnn.ModulatedDeformConv2dPack and dnn.DCN is dnn.DeformConv2dPack


def test_extra_repr_shows_settings():
    text = repr(dnn.ModulatedDeformConv2dPack(4, 8, 3, stride=2, padding=1, dilation=1, groups=2, deform_groups=2))
    for part in ("4, 8", "kernel_size=(3, 3)", "stride=(2, 2)", "padding=(1, 1)", "dilation=(1, 1)",
                 "groups=2", "deform_groups=2", "bias=True", "conv_offset"):
        assert part in text, (part, text)
    assert "bias=False" in repr(dnn.DeformConv2d(4, 4, 3))
    assert "groups=1" in repr(dnn.TVDeformConv2d(4, 4, 3)) and "bias=True" in repr(dnn.TVDeformConv2d(4, 4, 3))


def test_gradients_reach_conv_offset():
    layer = dnn.ModulatedDeformConv2dPack(4, 4, 3, padding=1).double()
    x = torch.randn(2, 4, 6, 6, generator=_g(6), dtype=torch.float64)
    layer(x).square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_explain_per_layer():
    layer = dnn.ModulatedDeformConv2dPack(64, 64, 3, padding=1)
    report = layer.explain(torch.empty(2, 64, 16, 16, device="meta"))
    assert report.chosen in mx_dcn.backend_names()
    assert report.problem.out_height == 16 and report.problem.has_mask and report.problem.has_bias
    npu = layer.explain(torch.empty(2, 64, 16, 16), device="npu", soc="Ascend910B2")
    assert npu.problem.device_type == "npu"
    v1 = dnn.DeformConv2dPack(4, 4, 3, stride=2).explain(torch.empty(1, 4, 9, 9))
    assert not v1.problem.has_mask and (v1.problem.out_height, v1.problem.out_width) == (4, 4)


def test_torchvision_layer_loads_torchvision_state_dict():
    g = _g(7)
    sd = OrderedDict(weight=torch.randn(6, 2, 3, 3, generator=g, dtype=torch.float64),
                     bias=torch.randn(6, generator=g, dtype=torch.float64))
    layer = dnn.TVDeformConv2d(4, 6, 3, padding=1, groups=2).double()
    assert layer.load_state_dict(sd).missing_keys == []
    x = torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64)
    offset = torch.randn(2, 2 * 2 * 9, 5, 5, generator=g, dtype=torch.float64)  # offset_groups = 2
    mask = torch.rand(2, 2 * 9, 5, 5, generator=g, dtype=torch.float64)
    want = oracle_forward(x, offset, mask, sd["weight"], sd["bias"], 1, 1, 1, 2, 2)
    assert_close_to(layer(x, offset, mask), want, torch.float64, "torchvision layer")
    assert_close_to(layer(x, offset), oracle_forward(x, offset, None, sd["weight"], sd["bias"], 1, 1, 1, 2, 2),
                    torch.float64, "torchvision layer v1")
    nobias = dnn.TVDeformConv2d(4, 6, 3, bias=False)
    assert [n for n, _ in nobias.named_parameters()] == ["weight"]
    assert tv.DeformConv2d is dnn.TVDeformConv2d


def test_example_training_script_runs():
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, os.path.join(root, "examples", "train_dcn_head.py"), "--steps", "10",
                           "--check"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    layers = [line for line in lines if "->" in line and "dg=" in line]
    assert len(layers) == 3 and all(line.split("->")[1].split()[0] in mx_dcn.backend_names() for line in layers)
    assert "went down" in lines[-1]


@pytest.mark.parametrize("cls", [dnn.ModulatedDeformConv2dPack, dnn.DeformConv2dPack])
def test_autocast_mixed_precision(cls):
    # Under autocast conv_offset returns bfloat16 while x and the parameters are float32: the layer
    # follows mmcv and computes in the offset's dtype instead of failing on mixed dtypes.
    layer = cls(8, 8, 3, padding=1)
    with torch.no_grad():
        layer.conv_offset.weight.normal_(0, 0.1)
    x = torch.randn(2, 8, 6, 6, generator=_g(8))
    want = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x)
    assert got.dtype == torch.bfloat16
    assert (got.float() - want).abs().max() <= 0.05 * want.abs().max()
    got.float().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.dtype == torch.float32


def test_mixed_dtypes_outside_autocast_are_an_error():
    layer = dnn.ModulatedDeformConv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 5, 5)
    with pytest.raises(TypeError, match="dtype"):
        layer(x, torch.zeros(1, 18, 5, 5, dtype=torch.float64), torch.ones(1, 9, 5, 5, dtype=torch.float64))
