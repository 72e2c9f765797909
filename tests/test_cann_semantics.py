"""CANN's deformable convolution against mx_dcn's semantics, on the case suite.

mx_dcn/testing/cann_model.py models CANN's op from its documentation and sources with either corner
rule: the documented int() ("trunc") and the A2 kernel's floor. Here:
- the floor rule gives the canonical oracle's forward and every gradient on the whole suite;
- the documented rule differs wherever a sample coordinate lies in (-2, 0) off the integers, and
  nowhere else;
- the cann backend, run through a stand-in torch_npu that computes with the model, gives the oracle's
  forward and gradients under BOTH rules (its conversion, mx_dcn/backends/cann_sampling.py), and each
  part of the conversion is needed (removing it makes the comparison fail).
No NPU here: this checks the rules as CANN writes them down, not a CANN binary."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from mx_dcn.backends import cann_sampling
from mx_dcn.backends.cann import CannBackend
from mx_dcn.layouts import cann_to_canonical, canonical_to_cann
from mx_dcn.problem import describe
from mx_dcn.testing.cann_model import cann_backward, cann_forward
from mx_dcn.testing.cases import CASES, CASES_BY_NAME, within_tolerance
from mx_dcn.testing.oracle import oracle_backward, oracle_forward

NAMES = ("x", "offset", "mask", "weight", "bias")
NONEMPTY = [c for c in CASES if c.n > 0]


def cann_args(case):
    (ph, pw) = case.padding
    return dict(kernel_size=[case.kh, case.kw], stride=[1, 1, *case.stride], padding=[ph, ph, pw, pw],
                dilation=[1, 1, *case.dilation], groups=case.groups, deformable_groups=case.deformable_groups)


def planar(t):
    return canonical_to_cann(t["offset"], t["mask"])


def fractional_negative_coordinates(case, t) -> bool:
    """Whether some sample coordinate (of a nonzero mask) lies in (-2, 0) and is not an integer."""
    taps = case.deformable_groups * case.kh * case.kw
    ho, wo = case.out_hw
    i = torch.arange(case.kh).repeat_interleave(case.kw).repeat(case.deformable_groups).view(1, -1, 1, 1)
    j = torch.arange(case.kw).repeat(case.kh * case.deformable_groups).view(1, -1, 1, 1)
    y = (torch.arange(ho).view(1, 1, -1, 1) * case.stride[0] - case.padding[0] + i * case.dilation[0]
         + t["offset"][:, 0::2])
    x = (torch.arange(wo).view(1, 1, 1, -1) * case.stride[1] - case.padding[1] + j * case.dilation[1]
         + t["offset"][:, 1::2])
    mask = t["mask"] if t["mask"] is not None else torch.ones(case.n, taps, ho, wo, dtype=torch.float64)
    odd = lambda c: (c > -2) & (c < 0) & (c != torch.round(c))  # noqa: E731
    return bool(((odd(y) | odd(x)) & (mask != 0)).any())


@pytest.mark.parametrize("case", NONEMPTY, ids=lambda c: c.name)
def test_floor_rule_is_the_canonical_semantics(case):
    t = case.make_inputs(torch.float64)
    out, _ = cann_forward(t["x"], t["weight"], planar(t), t["bias"], rounding="floor", **cann_args(case))
    want = oracle_forward(*(t[k] for k in NAMES), **case.args())
    assert np.abs(out - want).max() <= 1e-12 * max(1.0, np.abs(want).max())
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    g = cann_backward(t["x"], grad, t["weight"], planar(t), rounding="floor", **cann_args(case))
    w = oracle_backward(*(t[k] for k in NAMES), grad, **case.args())
    g_offset, g_mask = cann_to_canonical(torch.from_numpy(g["offset_all"]))
    got = {"x": g["x"], "weight": g["weight"], "offset": g_offset.numpy(),
           "mask": g_mask.numpy() if t["mask"] is not None else None}
    for name, value in got.items():
        if value is not None:
            assert np.abs(value - w[name]).max() <= 1e-10 * max(1.0, np.abs(w[name]).max()), name


@pytest.mark.parametrize("case", NONEMPTY, ids=lambda c: c.name)
def test_documented_int_rule_differs_exactly_off_the_integers_in_minus_two_to_zero(case):
    t = case.make_inputs(torch.float64)
    out, _ = cann_forward(t["x"], t["weight"], planar(t), t["bias"], rounding="trunc", **cann_args(case))
    want = oracle_forward(*(t[k] for k in NAMES), **case.args())
    differs = np.abs(out - want).max() > 1e-9 * max(1.0, np.abs(want).max())
    assert differs == fractional_negative_coordinates(case, t)


def test_the_rules_differ_on_most_of_the_suite():
    """The comparison above is not vacuous: most cases put samples in (-2, 0)."""
    affected = [c.name for c in NONEMPTY if fractional_negative_coordinates(c, c.make_inputs(torch.float64))]
    assert len(affected) >= len(NONEMPTY) - 2 and "offsets_integer" not in affected and "zero_offsets" not in affected


# --------------------------------------------------------------------------- the cann backend, end to end


def stand_in_torch_npu(rounding):
    """npu_deformable_conv2d / npu_deformable_conv2dbk computing with the model (float64, cast back)."""
    calls = []

    def conv(x, weight, offset_all, bias, kernel_size, stride, padding, dilation=(1, 1, 1, 1), groups=1,
             deformable_groups=1, modulated=True):
        assert modulated and list(kernel_size) == list(weight.shape[2:])
        calls.append(("forward", list(padding)))
        out, deform = cann_forward(x, weight, offset_all, bias, kernel_size, stride, padding, dilation, groups,
                                   deformable_groups, rounding)
        return torch.as_tensor(out, dtype=x.dtype), torch.as_tensor(deform, dtype=x.dtype)

    def conv_bk(x, grad, offset_out, weight, offset_all, kernel_size, stride, padding, dilation, groups,
                deformable_groups, modulated):
        calls.append(("backward", list(padding)))
        g = cann_backward(x, grad, weight, offset_all, kernel_size, stride, padding, dilation, groups,
                          deformable_groups, rounding)
        as_t = lambda a: torch.as_tensor(a, dtype=x.dtype)  # noqa: E731
        return as_t(g["x"]), as_t(g["weight"]), as_t(g["offset_all"]), as_t(g["bias"])

    module = types.ModuleType("torch_npu")
    module.npu_deformable_conv2d, module.npu_deformable_conv2dbk = conv, conv_bk
    return module, calls


def run_backend(case, rounding, monkeypatch):
    """(out, grads, oracle out, oracle grads, calls) of the cann backend on `case` in float32."""
    fake, calls = stand_in_torch_npu(rounding)
    monkeypatch.setitem(sys.modules, "torch_npu", fake)
    inputs = {k: (v.requires_grad_(True) if v is not None else None)
              for k, v in case.make_inputs(torch.float32).items()}
    p = describe(*(inputs[k] for k in NAMES), **case.args())
    out = CannBackend().run(p, *(inputs[k] for k in NAMES))
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad)
    want = oracle_forward(*(inputs[k] for k in NAMES), **case.args())
    wants = oracle_backward(*(inputs[k] for k in NAMES), grad, **case.args())
    grads = {k: inputs[k].grad for k in NAMES if inputs[k] is not None}
    return out, grads, want, wants, calls


def close(got, want) -> bool:
    return within_tolerance(got, torch.as_tensor(want), torch.float32)[0]


@pytest.mark.parametrize("rounding", ["trunc", "floor"])
@pytest.mark.parametrize("case", [c for c in CASES if c.n > 0], ids=lambda c: c.name)
def test_cann_backend_gives_the_canonical_result_under_both_rules(monkeypatch, case, rounding):
    out, grads, want, wants, calls = run_backend(case, rounding, monkeypatch)
    assert out.shape == tuple(want.shape) and close(out, want)
    for name, g in grads.items():
        assert close(g, wants[name]), name
    assert [c[0] for c in calls] == ["forward", "backward"]


def test_an_empty_batch_never_reaches_the_op():
    """CANN's op takes no empty tensors: the backend declares it (rule "empty", tests/test_npu_limits.py)."""
    case = next(c for c in CASES if c.n == 0)
    inputs = case.make_inputs(torch.float32)
    p = describe(*(inputs[k] for k in NAMES), **case.args())
    assert [v.rule for v in CannBackend().violations(p)] == ["empty"]


def test_conversion_padding_per_axis():
    """(CANN padding before, after, offset shift): the shift is 2 in total, as much as possible from the
    padding; the output size is kept except at padding 0."""
    assert [cann_sampling._axis(p) for p in (0, 1, 2, 3)] == [(0, 0, 2), (0, 0, 1), (0, 2, 0), (1, 3, 0)]


@pytest.mark.parametrize("part", ["shift", "box"])
def test_each_part_of_the_conversion_is_needed(monkeypatch, part):
    """Without the shift the documented rule gives other values; without the box the floor-side
    derivative of samples exactly on -1 (zero offsets, padding 1) reaches the offset gradient."""
    if part == "shift":
        monkeypatch.setattr(cann_sampling, "SHIFT", 0)
        case, rounding, name = CASES_BY_NAME["k3x3"], "trunc", None
    else:
        monkeypatch.setattr(cann_sampling, "inside_box", lambda p, om: torch.ones(
            om.shape[0], om.shape[1] // 3, *om.shape[2:], dtype=torch.bool))
        case, rounding, name = CASES_BY_NAME["zero_offsets"], "floor", "offset"
    out, grads, want, wants, _ = run_backend(case, rounding, monkeypatch)
    if name is None:
        assert not close(out, want)
    else:
        assert close(out, want) and not close(grads[name], wants[name])
