"""The cann backend: layout conversion against the canonical layout (hand-checked example, round
trips, DCNv1 ones), its own constraints, and its call wiring against a stand-in of
torch_npu.npu_deformable_conv2d written from the op's documentation (no NPU here)."""
import sys
import types

import pytest
import torch

import mx_dcn
from mx_dcn.backends.cann import CannBackend
from mx_dcn.layouts import canonical_to_cann, canonical_to_mindspore, cann_to_canonical, mindspore_to_canonical
from mx_dcn.problem import describe
from mx_dcn.testing.cases import Case
from mx_dcn.testing.oracle import oracle_backward, oracle_forward


def test_hand_checked_example():
    # dg=1, kernel 1x2 (T=2 samples), one output pixel. Canonical: [dy0, dx0, dy1, dx1], mask [m0, m1].
    offset = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 4, 1, 1)
    mask = torch.tensor([5.0, 6.0]).reshape(1, 2, 1, 1)
    planar = canonical_to_cann(offset, mask)
    # CANN: [dx0, dx1, dy0, dy1, m0, m1]
    assert planar.flatten().tolist() == [2.0, 4.0, 1.0, 3.0, 5.0, 6.0]
    back_offset, back_mask = cann_to_canonical(planar)
    assert back_offset.flatten().tolist() == [1.0, 2.0, 3.0, 4.0]
    assert back_mask.flatten().tolist() == [5.0, 6.0]


def test_hand_checked_example_two_groups():
    # dg=2, kernel 1x1: samples t = group. Canonical [dy_g0, dx_g0, dy_g1, dx_g1].
    offset = torch.tensor([10.0, 20.0, 30.0, 40.0]).reshape(1, 4, 1, 1)
    planar = canonical_to_cann(offset, None)
    assert planar.flatten().tolist() == [20.0, 40.0, 10.0, 30.0, 1.0, 1.0]   # no mask -> ones


@pytest.mark.parametrize("dg,kh,kw", [(1, 3, 3), (2, 3, 1), (4, 1, 1), (1, 5, 5)])
def test_round_trips(dg, kh, kw):
    g = torch.Generator().manual_seed(dg * 100 + kh * 10 + kw)
    t = dg * kh * kw
    offset = torch.randn(2, 2 * t, 3, 4, generator=g)
    mask = torch.rand(2, t, 3, 4, generator=g)
    planar = canonical_to_cann(offset, mask)
    assert planar.shape == (2, 3 * t, 3, 4)
    o, m = cann_to_canonical(planar)
    assert torch.equal(o, offset) and torch.equal(m, mask)
    # Element by element against the definition: sample s of pixel (i, j).
    for s in range(t):
        assert torch.equal(planar[:, s], offset[:, 2 * s + 1])         # dx
        assert torch.equal(planar[:, t + s], offset[:, 2 * s])         # dy
        assert torch.equal(planar[:, 2 * t + s], mask[:, s])
    assert torch.equal(canonical_to_cann(*mindspore_to_canonical(planar)), planar)
    assert torch.equal(canonical_to_mindspore(offset, mask), planar)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="offset"):
        canonical_to_cann(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="mask"):
        canonical_to_cann(torch.zeros(1, 4, 2, 2), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="offset_mask"):
        cann_to_canonical(torch.zeros(1, 4, 2, 2))


def test_constraints_are_named():
    b = CannBackend()
    meta = lambda *s, dtype=torch.float32: torch.empty(*s, device="meta", dtype=dtype)  # noqa: E731
    p = describe(meta(1, 8, 7, 7), meta(1, 6, 5, 7), meta(1, 3, 5, 7), meta(4, 8, 3, 1), device="npu")
    assert [v.rule for v in b.violations(p)] == ["square_kernel"]
    p = describe(meta(1, 8, 7, 7, dtype=torch.float64), meta(1, 18, 7, 7, dtype=torch.float64), None,
                 meta(4, 8, 3, 3, dtype=torch.float64), padding=1, device="npu")
    assert [v.rule for v in b.violations(p)] == ["dtype"]
    assert "torch_npu is not importable" in b.available().reason


# --------------------------------------------------------------------------- wiring, against a stand-in


def _fake_torch_npu():
    """npu_deformable_conv2d / ...bk as documented: NCHW x, (C_out, C_in/g, kh, kw) weight, planar
    offsets [dx, dy, mask], 4-element stride/padding/dilation. Parsed here independently of layouts."""
    calls = []

    def canonical(offset_all):
        t = offset_all.shape[1] // 3
        dx, dy, m = offset_all[:, :t], offset_all[:, t:2 * t], offset_all[:, 2 * t:]
        off = torch.empty(offset_all.shape[0], 2 * t, *offset_all.shape[2:], dtype=offset_all.dtype)
        for s in range(t):
            off[:, 2 * s], off[:, 2 * s + 1] = dy[:, s], dx[:, s]
        return off, m

    def args(kernel_size, stride, padding, dilation, groups, deformable_groups, modulated):
        assert stride[:2] == [1, 1] and dilation[:2] == [1, 1] and modulated
        assert padding[0] == padding[1] and padding[2] == padding[3]   # the backend pads symmetrically
        return dict(stride=stride[2:], padding=(padding[0], padding[2]), dilation=dilation[2:], groups=groups,
                    deformable_groups=deformable_groups)

    def conv(x, weight, offset_all, bias, kernel_size, stride, padding, dilation=(1, 1, 1, 1), groups=1,
             deformable_groups=1, modulated=True):
        calls.append("forward")
        assert list(kernel_size) == list(weight.shape[2:])
        off, m = canonical(offset_all)
        out = oracle_forward(x, off, m, weight, bias, **args(kernel_size, stride, padding, dilation, groups,
                                                               deformable_groups, modulated))
        return torch.as_tensor(out, dtype=x.dtype), offset_all.clone()

    def conv_bk(x, grad, offset_out, weight, offset_all, kernel_size, stride, padding, dilation, groups,
                deformable_groups, modulated):
        calls.append("backward")
        off, m = canonical(offset_all)
        g = oracle_backward(x, off, m, weight, None, grad, **args(kernel_size, stride, padding, dilation, groups,
                                                                  deformable_groups, modulated))
        t = m.shape[1]
        planar = torch.cat([torch.as_tensor(g["offset"][:, 1::2]), torch.as_tensor(g["offset"][:, 0::2]),
                            torch.as_tensor(g["mask"])], dim=1)
        as_t = lambda a: torch.as_tensor(a, dtype=x.dtype)  # noqa: E731
        assert planar.shape[1] == 3 * t
        return as_t(g["x"]), as_t(g["weight"]), planar.to(x.dtype), None

    module = types.ModuleType("torch_npu")
    module.npu_deformable_conv2d, module.npu_deformable_conv2dbk = conv, conv_bk
    return module, calls


@pytest.mark.parametrize("case", [Case("cann_wiring", 2, 8, 7, 6, 4, stride=(2, 1), padding=(1, 2),
                                       dilation=(1, 2), groups=2, deformable_groups=2),
                                  Case("cann_v1", 1, 4, 5, 5, 3, mask=False, bias=False)],
                         ids=lambda c: c.name)
def test_call_wiring_against_documented_op(monkeypatch, case):
    fake, calls = _fake_torch_npu()
    monkeypatch.setitem(sys.modules, "torch_npu", fake)
    inputs = {k: (v.requires_grad_(True) if v is not None else None)
              for k, v in case.make_inputs(torch.float32).items()}
    names = ("x", "offset", "mask", "weight", "bias")
    p = describe(*(inputs[k] for k in names), **case.args())
    out = CannBackend().run(p, *(inputs[k] for k in names))
    want = oracle_forward(*(inputs[k] for k in names), **case.args())
    assert float((out.detach().double() - torch.as_tensor(want)).abs().max()) < 1e-4
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    grads = oracle_backward(*(inputs[k] for k in names), grad, **case.args())
    for k in names:
        if inputs[k] is not None:
            assert float((inputs[k].grad.double() - torch.as_tensor(grads[k])).abs().max()) < 1e-4, k
    assert calls == ["forward", "backward"]
