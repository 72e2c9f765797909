"""mx_dcn.compat: torchvision, Paddle and MindSpore signatures and conventions against mx_dcn's
canonical call on the case suite, the MindSpore seed example in both of its forms, asymmetric padding,
layout converters, and argument validation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mx_dcn
from mx_dcn import layouts
from mx_dcn.compat import mindspore as ms
from mx_dcn.compat import paddle as pd
from mx_dcn.compat import torchvision as tv
from mx_dcn.testing.cases import CASES

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # backend fallback notices


def canonical(inputs, case):
    return mx_dcn.modulated_deform_conv2d(inputs["x"], inputs["offset"], inputs["mask"], inputs["weight"],
                                          inputs["bias"], **case.args())


def assert_same(got, want):
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12), float((got - want).abs().max())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_torchvision_matches_canonical(case):
    i = case.make_inputs(dtype=torch.float64, seed=11)
    assert tv.infer_groups(i["x"], i["offset"], i["weight"]) == (case.groups, case.deformable_groups)
    got = tv.deform_conv2d(i["x"], i["offset"], i["weight"], i["bias"], stride=case.stride,
                           padding=case.padding, dilation=case.dilation, mask=i["mask"])
    assert_same(got, canonical(i, case))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_paddle_matches_canonical(case):
    i = case.make_inputs(dtype=torch.float64, seed=12)
    call = lambda: pd.deform_conv2d(i["x"], i["offset"], i["weight"], i["bias"], list(case.stride),
                                    tuple(case.padding), list(case.dilation), case.deformable_groups,
                                    case.groups, i["mask"], name="dcn")
    if case.c_out % case.deformable_groups:
        with pytest.raises(ValueError, match="deformable_groups"):
            call()
        return
    assert_same(call(), canonical(i, case))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_mindspore_matches_canonical(case):
    i = case.make_inputs(dtype=torch.float64, seed=13)
    (sh, sw), (ph, pw), (dh, dw) = case.stride, case.padding, case.dilation
    offsets = layouts.canonical_to_mindspore(i["offset"], i["mask"]).requires_grad_(True)
    got = ms.deformable_conv2d(i["x"], i["weight"], offsets, (case.kh, case.kw), (1, 1, sh, sw),
                               (ph, ph, pw, pw), i["bias"], (1, 1, dh, dw), case.groups,
                               case.deformable_groups, modulated=case.mask)
    offset = i["offset"].clone().requires_grad_(True)
    mask = None if i["mask"] is None else i["mask"].clone().requires_grad_(True)
    want = mx_dcn.modulated_deform_conv2d(i["x"], offset, mask, i["weight"], i["bias"], **case.args())
    assert_same(got, want)
    if case.n == 0:
        return
    # gradients w.r.t. the packed offsets are the canonical ones, packed (zero for an ignored mask)
    grad = torch.randn(got.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    (g_packed,) = torch.autograd.grad(got, offsets, grad)
    g_canon = torch.autograd.grad(want, [t for t in (offset, mask) if t is not None], grad)
    g_mask = g_canon[1] if mask is not None else torch.zeros_like(offsets[:, :offsets.shape[1] // 3])
    assert_same(g_packed, layouts.canonical_to_mindspore(g_canon[0], g_mask))


def test_mindspore_packed_layout_by_definition():
    # MindSpore documents the channel order ((offset_x, offset_y, mask), dg, kh, kw): build it by
    # that definition, index by index, and check the converters against it.
    n, dg, kh, kw, ho, wo = 2, 2, 3, 2, 3, 4
    g = torch.Generator().manual_seed(0)
    offset = torch.randn(n, 2 * dg * kh * kw, ho, wo, generator=g)
    mask = torch.rand(n, dg * kh * kw, ho, wo, generator=g)
    packed = torch.empty(n, 3 * dg * kh * kw, ho, wo)
    taps = dg * kh * kw
    for grp in range(dg):
        for i in range(kh):
            for j in range(kw):
                t = (grp * kh + i) * kw + j
                packed[:, 0 * taps + t] = offset[:, 2 * t + 1]  # dx
                packed[:, 1 * taps + t] = offset[:, 2 * t + 0]  # dy
                packed[:, 2 * taps + t] = mask[:, t]
    assert torch.equal(layouts.canonical_to_mindspore(offset, mask), packed)
    back_offset, back_mask = layouts.mindspore_to_canonical(packed)
    assert torch.equal(back_offset, offset) and torch.equal(back_mask, mask)


def test_converter_round_trips():
    g = torch.Generator().manual_seed(1)
    offset = torch.randn(3, 2 * 18, 5, 4, generator=g)
    mask = torch.rand(3, 18, 5, 4, generator=g)
    for to, back in ((layouts.canonical_to_mindspore, layouts.mindspore_to_canonical),
                     (layouts.canonical_to_cann, layouts.cann_to_canonical)):
        o, m = back(to(offset, mask))
        assert torch.equal(o, offset) and torch.equal(m, mask)
        packed = torch.randn(2, 27, 3, 3, generator=g)
        assert torch.equal(to(*back(packed)), packed)
        assert torch.equal(back(to(offset))[1], torch.ones_like(mask))  # DCNv1: mask of ones


def _seed_inputs():
    """The seed document's example (MindSpore vs torchvision), step by step, same random stream."""
    np.random.seed(1)
    kh, kw, batch, dg = 1, 1, 1, 1
    x_h, x_w, out_h, out_w = 1, 2, 1, 2
    x = np.random.randn(batch, 64, x_h, x_w).astype(np.float32)
    weight = np.random.randn(batch, 64, kh, kw).astype(np.float32)
    offsets_x = np.random.randn(batch, 1, dg, kh, kw, out_h, out_w).astype(np.float32)
    offsets_y = np.random.randn(batch, 1, dg, kh, kw, out_h, out_w).astype(np.float32)
    mask = np.random.randn(batch, 1, dg, kh, kw, out_h, out_w).astype(np.float32)
    return x, weight, offsets_x, offsets_y, mask


# The printed values (8 digits) come from a 64-term sum of O(1) products that cancels to -0.0022:
# float32 accumulation order moves the 8th digit, so float32 is held to 2e-7 and float64 to 5e-9.
SEED_TOL = {torch.float32: 2e-7, torch.float64: 5e-9}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_seed_example_mindspore_form(dtype):
    x, weight, offsets_x, offsets_y, mask = _seed_inputs()
    offsets = np.concatenate((offsets_x, offsets_y, mask), axis=1).reshape((1, 3, 1, 2))
    t = lambda a: torch.from_numpy(a).to(dtype)
    out = ms.deformable_conv2d(t(x), t(weight), t(offsets), (1, 1), (1, 1, 1, 1), (0, 0, 0, 0),
                               dilations=(1, 1, 1, 1))
    assert out.shape == (1, 1, 1, 2) and out.dtype == dtype
    np.testing.assert_allclose(out.flatten().numpy(), [-0.00220442, 0.0], rtol=0, atol=SEED_TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_seed_example_torchvision_form(dtype):
    x, weight, offsets_x, offsets_y, mask = _seed_inputs()
    offsets = np.concatenate((offsets_y, offsets_x), axis=1).transpose(0, 2, 3, 4, 1, 5, 6).reshape((1, 2, 1, 2))
    mask = mask.transpose(0, 2, 3, 4, 1, 5, 6).reshape((1, 1, 1, 2))
    t = lambda a: torch.from_numpy(a).to(dtype)
    out = tv.deform_conv2d(t(x), t(offsets), t(weight), stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                           mask=t(mask))
    np.testing.assert_allclose(out.flatten().numpy(), [-0.0022, 0.0], rtol=0, atol=5e-5)  # as printed
    np.testing.assert_allclose(out.flatten().numpy(), [-0.00220442, 0.0], rtol=0, atol=SEED_TOL[dtype])


@pytest.mark.parametrize("pads", [(2, 0, 1, 3), (0, 2, 3, 1), (1, 2, 0, 0), (3, 1, 2, 2)])
@pytest.mark.parametrize("stride", [1, 2])
def test_mindspore_asymmetric_padding(pads, stride):
    # Reference: pad the input explicitly with zeros and convolve without padding. A sample in the
    # zero border reads zeros, as a sample outside the image does, so values and gradients agree.
    top, bottom, left, right = pads
    g = torch.Generator().manual_seed(2)
    n, cin, h, w, cout, dg = 2, 4, 6, 7, 3, 2
    x = torch.randn(n, cin, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(cout, cin, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ho = (h + top + bottom - 3) // stride + 1
    wo = (w + left + right - 3) // stride + 1
    offsets = torch.randn(n, 3 * dg * 9, ho, wo, generator=g, dtype=torch.float64) * 1.3
    offsets[:, 2 * dg * 9:] = offsets[:, 2 * dg * 9:].sigmoid()
    offsets.requires_grad_(True)
    out = ms.deformable_conv2d(x, weight, offsets, (3, 3), (1, 1, stride, stride), pads,
                               deformable_groups=dg)
    offset, mask = layouts.mindspore_to_canonical(offsets)
    want = mx_dcn.modulated_deform_conv2d(F.pad(x, (left, right, top, bottom)), offset, mask, weight, None,
                                          stride, 0, 1, 1, dg)
    assert out.shape == (n, cout, ho, wo)
    assert torch.allclose(out, want, rtol=1e-10, atol=1e-10)
    grad = torch.randn(out.shape, generator=g, dtype=torch.float64)
    got_grads = torch.autograd.grad(out, (x, weight, offsets), grad)
    want_grads = torch.autograd.grad(want, (x, weight, offsets), grad)
    for name, a, b in zip(("x", "weight", "offsets"), got_grads, want_grads):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-9), (name, float((a - b).abs().max()))


def test_mindspore_v1_ignores_mask_third():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 5, 5, generator=g, dtype=torch.float64)
    weight = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64)
    offsets = torch.randn(1, 27, 5, 5, generator=g, dtype=torch.float64)
    out = ms.deformable_conv2d(x, weight, offsets, (3, 3), (1, 1, 1, 1), (1, 1, 1, 1), modulated=False)
    offset, _ = layouts.mindspore_to_canonical(offsets)
    assert torch.equal(out, mx_dcn.deform_conv2d(x, offset, weight, 1, 1))


def test_validation_names_the_argument():
    x = torch.randn(1, 4, 5, 5)
    w = torch.randn(2, 4, 3, 3)
    offsets = torch.randn(1, 27, 5, 5)
    good = dict(kernel_size=(3, 3), strides=(1, 1, 1, 1), padding=(1, 1, 1, 1))
    bad = [
        (dict(strides=(2, 1, 1, 1)), "strides"),
        (dict(strides=(1, 1)), "strides"),
        (dict(padding=(1, 1, 1)), "padding"),
        (dict(padding=(1, -1, 1, 1)), "padding"),
        (dict(kernel_size=(3, 1)), "kernel_size"),
    ]
    for change, name in bad:
        with pytest.raises(ValueError, match=name):
            ms.deformable_conv2d(x, w, offsets, **dict(good, **change))
    with pytest.raises(ValueError, match="dilations"):
        ms.deformable_conv2d(x, w, offsets, **good, dilations=(1, 2, 1, 1))
    with pytest.raises(ValueError, match="offsets"):
        ms.deformable_conv2d(x, w, offsets[:, :18], **good)
    with pytest.raises(ValueError, match="offsets"):
        ms.deformable_conv2d(x, w, offsets[0], **good)
    with pytest.raises(TypeError, match="modulated"):
        ms.deformable_conv2d(x, w, offsets, **good, modulated=1)

    offset = torch.randn(1, 18, 5, 5)
    with pytest.raises(ValueError, match="offset"):
        tv.deform_conv2d(x, offset[:, :17], w, padding=1)
    with pytest.raises(ValueError, match="weight"):
        tv.deform_conv2d(x, offset, torch.randn(2, 3, 3, 3), padding=1)
    with pytest.raises(ValueError, match="input"):
        tv.deform_conv2d(x[0], offset, w, padding=1)

    with pytest.raises(ValueError, match="stride"):
        pd.deform_conv2d(x, offset, w, stride=[1, 1, 1], padding=1)
    with pytest.raises(ValueError, match="padding"):
        pd.deform_conv2d(x, offset, w, padding=(1,))
    with pytest.raises(ValueError, match="deformable_groups"):
        pd.deform_conv2d(torch.randn(1, 4, 5, 5), torch.randn(1, 36, 5, 5), torch.randn(3, 4, 3, 3),
                         padding=1, deformable_groups=2)


def test_paddle_layer():
    layer = pd.DeformConv2D(4, 6, 3, padding=1, deformable_groups=2, groups=2).double()
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert torch.all(layer.bias == 0) and layer.weight.shape == (6, 2, 3, 3)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 4, 5, 5, generator=g, dtype=torch.float64)
    offset = torch.randn(1, 36, 5, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(1, 18, 5, 5, generator=g, dtype=torch.float64)
    want = mx_dcn.modulated_deform_conv2d(x, offset, mask, layer.weight, layer.bias, 1, 1, 1, 2, 2)
    assert torch.equal(layer(x, offset, mask), want)
    assert pd.DeformConv2D(4, 6, 3, bias_attr=False).bias is None
    assert "deformable_groups=2" in repr(layer)


# --------------------------------------------------------------------------- argument errors, as mx_dcn's own


def test_adapters_raise_typeerror_for_a_non_tensor_naming_it():
    from mx_dcn.compat import mindspore, paddle, torchvision

    x, w = torch.randn(1, 4, 5, 5), torch.randn(4, 4, 3, 3)
    off = torch.zeros(1, 18, 3, 3)
    with pytest.raises(TypeError, match="^x:"):
        mx_dcn.modulated_deform_conv2d([1.0], off, None, w)          # mx_dcn's own, for reference
    with pytest.raises(TypeError, match="^input:"):
        torchvision.deform_conv2d([1.0], off, w)
    with pytest.raises(TypeError, match="^weight:"):
        paddle.deform_conv2d(x, off, "w")
    with pytest.raises(TypeError, match="^offsets:"):
        mindspore.deformable_conv2d(x, w, None, 3, (1, 1, 1, 1), (0, 0, 0, 0))
    with pytest.raises(TypeError, match="^deformable_groups:"):
        paddle.deform_conv2d(x, off, w, deformable_groups=1.5)


@pytest.mark.parametrize("make, arg", [
    (lambda: dnn_layers()["DCNv2"](0, 4, 3), "in_channels"),
    (lambda: dnn_layers()["DCNv2"](4, 4, 0), "kernel_size"),
    (lambda: dnn_layers()["DCN"](4, 4, 3, deform_groups=0), "deform_groups"),
    (lambda: dnn_layers()["DCN"](4, 4, 3, stride=0), "stride"),
    (lambda: dnn_layers()["TV"](0, 4, 3), "in_channels"),
    (lambda: dnn_layers()["TV"](4, 4, (3, 0)), "kernel_size"),
    (lambda: dnn_layers()["TV"](4, 4, 3, padding=-1), "padding"),
    (lambda: dnn_layers()["Paddle"](4, 4, 0), "kernel_size"),
    (lambda: dnn_layers()["Paddle"](4, 4, 3, deformable_groups=0), "deformable_groups"),
    (lambda: dnn_layers()["Paddle"](0, 4, 3), "in_channels"),
])
def test_layers_validate_constructor_arguments(make, arg):
    with pytest.raises(ValueError, match=f"^{arg}:"):
        make()


def dnn_layers():
    from mx_dcn import nn as dnn
    from mx_dcn.compat import paddle

    return {"DCNv2": dnn.ModulatedDeformConv2dPack, "DCN": dnn.DeformConv2dPack, "TV": dnn.TVDeformConv2d,
            "Paddle": paddle.DeformConv2D}


def test_torchvision_adapter_is_not_scriptable_as_documented():
    # docs/interop.md says why: the call validates and picks a backend in Python (mx_dcn.problem,
    # mx_dcn.registry), which TorchScript cannot compile; torch.export / torch.compile take it instead.
    from mx_dcn.compat.torchvision import DeformConv2d
    with pytest.raises(Exception):
        torch.jit.script(DeformConv2d(4, 4, 3))
