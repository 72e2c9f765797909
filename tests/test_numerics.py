"""The numerics policy of docs/numerics.md, on every backend available here.

NaN / Inf in x, offset, mask, weight and bias propagate as the formula evaluated in IEEE arithmetic
says (the float64 oracle evaluates exactly that formula, so its NaN / +Inf / -Inf pattern is the
expected one); huge or non-finite offsets sample outside (zeros, zero finite gradients); half
precision accumulates and computes coordinates in float32.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mx_dcn
from mx_dcn.testing.cases import within_tolerance
from mx_dcn.testing.oracle import oracle_backward, oracle_forward


def cpu_backends():
    return [n for n in mx_dcn.backend_names()
            if "cpu" in mx_dcn.get_backend(n).device_types and mx_dcn.get_backend(n).available()]


BACKENDS = cpu_backends()
NAMES = ("x", "offset", "mask", "weight", "bias")

SPECIAL = {"nan": float("nan"), "+inf": float("inf"), "-inf": float("-inf")}


def run(backend, inputs, **args):
    with mx_dcn.use_backend(backend):
        return mx_dcn.modulated_deform_conv2d(*(inputs[k] for k in NAMES), **args)


def oracle(inputs, **args):
    with np.errstate(invalid="ignore", over="ignore"):
        return torch.from_numpy(oracle_forward(*(inputs[k] for k in NAMES), **args))


def make(n=2, c_in=4, h=6, w=7, c_out=4, k=3, groups=2, dg=2, offsets="random", dtype=torch.float64,
         seed=0, stride=1, padding=1, dilation=1):
    """A small problem (inputs dict, args dict) with a mask and a bias."""
    g = torch.Generator().manual_seed(seed)
    h_out = (h + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    w_out = (w + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    taps = dg * k * k
    off = torch.randn(n, 2 * taps, h_out, w_out, generator=g, dtype=torch.float64) * 1.5
    if offsets == "zero":
        off.zero_()
    mask = torch.rand(n, taps, h_out, w_out, generator=g, dtype=torch.float64)
    mask[mask < 0.2] = 0.0
    inputs = dict(x=torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64), offset=off, mask=mask,
                  weight=torch.randn(c_out, c_in // groups, k, k, generator=g, dtype=torch.float64),
                  bias=torch.randn(c_out, generator=g, dtype=torch.float64))
    inputs = {name: t.to(dtype) for name, t in inputs.items()}
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, deformable_groups=dg)
    return inputs, args


def assert_same_nonfinite(got, want, dtype):
    """Same NaN, +Inf and -Inf positions; the finite values within the dtype's tolerance."""
    got = got.detach().double()
    for what, fn in (("NaN", torch.isnan), ("+Inf", torch.isposinf), ("-Inf", torch.isneginf)):
        g, w = fn(got), fn(want)
        assert torch.equal(g, w), (f"{what} pattern differs: {int(g.sum())} got vs {int(w.sum())} expected; "
                                   f"first differing index {tuple(torch.nonzero(g != w)[0].tolist())}")
    finite = torch.isfinite(want)
    ok, err, allowed = within_tolerance(got[finite], want[finite], dtype)
    assert ok, f"finite values: max error {err:.3g} > {allowed:.3g}"


# --------------------------------------------------------------------------- NaN / Inf propagation


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", (torch.float64, torch.float32))
@pytest.mark.parametrize("offsets", ("random", "zero"))
@pytest.mark.parametrize("value", tuple(SPECIAL))
@pytest.mark.parametrize("where", NAMES)
def test_nonfinite_input_propagates_as_the_policy_says(request, backend, dtype, offsets, value, where):
    inputs, args = make(offsets=offsets, dtype=dtype, seed=NAMES.index(where) * 10 + len(value))
    target = inputs[where].view(-1)
    positions = torch.randperm(target.numel(), generator=torch.Generator().manual_seed(7))[:3]
    target[positions] = SPECIAL[value]
    want = oracle(inputs, **args)
    if where != "offset":
        assert not torch.isfinite(want).all(), "the injected value must reach some output"
    assert_same_nonfinite(run(backend, inputs, **args), want, dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_in_x_reaches_exactly_the_outputs_reading_it_as_a_corner(backend):
    # 1x1 kernel, zero offsets: output (r, c) samples the integer point (r, c), whose in-image corners
    # are (r, c) (weight 1) and (r, c+1), (r+1, c), (r+1, c+1) (weight 0, still read: rule 2).
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    x[0, 1, 2, 3] = float("nan")
    inputs = dict(x=x, offset=torch.zeros(1, 2, 5, 6, dtype=torch.float64), mask=torch.ones(1, 1, 5, 6, dtype=torch.float64),
                  weight=torch.randn(4, 2, 1, 1, dtype=torch.float64), bias=None)
    out = run(backend, inputs, groups=2)
    expected = torch.zeros(1, 4, 5, 6, dtype=torch.bool)
    expected[0, 0:2, 1:3, 2:4] = True          # channel 1 is in convolution group 0: outputs 0 and 1
    assert torch.equal(torch.isnan(out), expected)
    # The dense convolution reaches only (2, 3); the far zero-weight corners are the documented difference.
    dense = F.conv2d(x, inputs["weight"], groups=2)
    assert torch.equal(torch.isnan(dense)[0, :, 2, 3], expected[0, :, 2, 3])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", (torch.float64, torch.float32))
def test_padded_zero_next_to_inf_is_not_nan(backend, dtype):
    x = torch.rand(1, 2, 5, 5, dtype=dtype) + 0.5
    x[:, :, 0, 0] = float("inf")
    weight = torch.rand(3, 2, 3, 3, dtype=dtype) + 0.1
    # Zero offsets with padding 1: the same +Inf outputs as the dense convolution, no NaN.
    inputs = dict(x=x, offset=torch.zeros(1, 18, 5, 5, dtype=dtype), mask=torch.ones(1, 9, 5, 5, dtype=dtype),
                  weight=weight, bias=None)
    out = run(backend, inputs, padding=1)
    dense = F.conv2d(x, weight, padding=1)
    assert not torch.isnan(out).any()
    assert torch.equal(torch.isposinf(out), torch.isposinf(dense))
    # A fractional sample at (-0.5, 0.3): two corners in row -1 (padding), two in row 0 (one +Inf).
    offset = torch.zeros(1, 2, 5, 5, dtype=dtype)
    offset[:, 0], offset[:, 1] = -0.5, 0.3
    inputs = dict(x=x, offset=offset, mask=torch.ones(1, 1, 5, 5, dtype=dtype), weight=weight[:, :, :1, :1],
                  bias=None)
    out = run(backend, inputs)
    assert not torch.isnan(out).any()
    assert torch.isposinf(out[0, :, 0, 0]).all()
    assert_same_nonfinite(out, oracle(inputs), dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", tuple(SPECIAL))
def test_nonfinite_offsets_sample_outside(request, backend, value):
    inputs, args = make(seed=3)
    inputs["offset"].fill_(SPECIAL[value])
    leaves = {k: t.clone().requires_grad_(True) for k, t in inputs.items()}
    out = run(backend, leaves, **args)
    assert torch.equal(out.detach(), inputs["bias"].view(1, -1, 1, 1).expand(out.shape))
    grads = torch.autograd.grad(out, list(leaves.values()), torch.ones_like(out), allow_unused=True)
    for name, got in zip(leaves, grads):
        assert got is None or torch.isfinite(got).all(), f"grad {name} is not finite"
        if name != "bias" and got is not None:
            assert not got.any(), f"grad {name} must be zero"


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_mask_times_nan_sample_is_nan(backend):
    inputs, args = make(offsets="zero", seed=4)
    inputs["x"][0, 0, 3, 3] = float("nan")
    inputs["mask"].zero_()
    out = run(backend, inputs, **args)
    want = oracle(inputs, **args)
    assert torch.isnan(want).any()
    assert_same_nonfinite(out, want, torch.float64)
    finite = torch.isfinite(want)
    assert torch.equal(out.detach()[finite], inputs["bias"].view(1, -1, 1, 1).expand(out.shape)[finite])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", ("nan", "+inf"))
def test_nonfinite_mask_poisons_its_outputs_even_for_outside_samples(backend, value):
    inputs, args = make(seed=5)
    inputs["offset"].fill_(1e6)                   # every sample outside: sample value 0
    inputs["mask"][1, 9 + 4, 2, 3] = SPECIAL[value]   # image 1, deformable group 1, centre tap
    out = run(backend, inputs, **args)
    expected = torch.zeros(out.shape, dtype=torch.bool)
    expected[1, 2:, 2, 3] = True                  # deformable group 1 = channels 2, 3 = conv group 1
    assert torch.equal(torch.isnan(out), expected), "mask * 0 must be NaN (rule 3)"
    assert_same_nonfinite(out, oracle(inputs, **args), torch.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("value", ("nan", "+inf"))
def test_nonfinite_weight_poisons_its_channel_like_a_dense_conv(backend, value):
    inputs, args = make(seed=6)
    inputs["offset"].fill_(-1e6)                  # every sample outside: zero columns
    inputs["weight"][3, 0, 1, 1] = SPECIAL[value]
    out = run(backend, inputs, **args)
    dense = F.conv2d(torch.zeros_like(inputs["x"]), inputs["weight"], inputs["bias"], padding=1, groups=2)
    assert torch.isnan(out[:, 3]).all() and torch.isnan(dense[:, 3]).all()
    assert torch.equal(out[:, :3], inputs["bias"][:3].view(1, -1, 1, 1).expand(out[:, :3].shape))


# --------------------------------------------------------------------------- huge offsets


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", (torch.float64, torch.float32, torch.float16, torch.bfloat16))
def test_offsets_of_1e6_give_zeros_and_finite_gradients(request, backend, dtype):
    inputs, args = make(seed=8, dtype=dtype)
    g = torch.Generator().manual_seed(0)
    far = torch.rand(inputs["offset"].shape, generator=g) < 0.5    # half the samples far away
    sign = torch.where(torch.rand(far.shape, generator=g) < 0.5, -1.0, 1.0).to(dtype)
    inputs["offset"] = torch.where(far, sign * 1e6, inputs["offset"])  # 1e6 is +-inf in fp16: outside too
    leaves = {k: t.clone().requires_grad_(True) for k, t in inputs.items()}
    out = run(backend, leaves, **args)
    grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64).to(dtype)
    grads = dict(zip(leaves, torch.autograd.grad(out, list(leaves.values()), grad_out)))
    with np.errstate(invalid="ignore", over="ignore"):
        want = oracle_backward(*(inputs[k] for k in NAMES), grad_out, **args)
    assert within_tolerance(out, oracle(inputs, **args), dtype)[0]
    for name, got in grads.items():
        assert torch.isfinite(got).all(), f"grad {name} is not finite"
        ok, err, allowed = within_tolerance(got, torch.from_numpy(want[name]), dtype)
        assert ok, f"grad {name}: {err:.3g} > {allowed:.3g}"
    # Far samples send no gradient to their offsets or masks.
    assert not grads["offset"][far].any()
    far_tap = far.view(far.shape[0], -1, 2, *far.shape[2:]).any(dim=2)   # dy or dx far: outside
    assert not grads["mask"][far_tap].any()
    per_tap = grads["offset"].view(far_tap.shape[0], -1, 2, *far_tap.shape[2:]).permute(0, 1, 3, 4, 2)
    assert not per_tap[far_tap].any()


# --------------------------------------------------------------------------- half precision


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16))
@pytest.mark.parametrize("value,weight_scale", ((100.0, 1.0), (24576.0, 2.0 ** -8)))
def test_half_inputs_accumulate_in_float32(backend, dtype, value, weight_scale):
    # 256 channels x 9 taps = 2304 terms of +-value*weight_scale: the first 128 channels add up to
    # 1152 * 100 = 115200 > 65504 (an fp16 accumulator overflows; a bf16 one loses every digit),
    # the last 128 take it back, and the result is a few hundred at most. Zero offsets keep every
    # partial sum exact in float32, so the only error allowed is the final rounding.
    c_in = 256
    g = torch.Generator().manual_seed(1)
    sign = torch.cat((torch.ones(c_in // 2), -torch.ones(c_in // 2))).view(1, c_in, 1, 1)
    wiggle = torch.randint(-1, 2, (4, c_in, 3, 3), generator=g) * 2.0 ** -7
    weight = ((sign + wiggle) * weight_scale).to(dtype)
    x = torch.full((1, c_in, 6, 6), value).to(dtype)
    offset = torch.zeros(1, 18, 6, 6, dtype=dtype)
    inputs = dict(x=x, offset=offset, mask=None, weight=weight, bias=None)
    out = run(backend, inputs, padding=1)
    want = oracle(inputs, padding=1)
    assert torch.isfinite(out).all(), "the accumulation overflowed"
    ok, err, allowed = within_tolerance(out, want, dtype)
    assert ok, f"max error {err:.3g} > {allowed:.3g} (max |want| {float(want.abs().max()):.3g})"


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp16_result_beyond_range_is_inf_like_dense_conv(backend):
    x = torch.full((1, 256, 4, 4), 100.0, dtype=torch.float16)
    weight = torch.ones(2, 256, 3, 3, dtype=torch.float16)
    inputs = dict(x=x, offset=torch.zeros(1, 18, 2, 2, dtype=torch.float16), mask=None, weight=weight, bias=None)
    out = run(backend, inputs)
    dense = F.conv2d(x.float(), weight.float()).half()           # 230400 does not fit fp16
    assert torch.isposinf(out).all() and torch.isposinf(dense).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16))
def test_half_coordinates_on_a_wide_image_are_float32(backend, dtype):
    # Beyond 2048 an fp16 coordinate (11 significant bits) is off by up to a pixel; bf16 by 8.
    width = 2200
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 2, 2, width, generator=g).to(dtype)
    offset = torch.zeros(1, 2 * 3, 2, width)
    # Fractional parts in [0.1, 0.4]: far from integers, where the offset gradient is discontinuous
    # and a float32 coordinate may legitimately round onto the other side.
    sign = torch.where(torch.rand(1, 3, 2, width, generator=g) < 0.5, -1.0, 1.0)
    offset[:, 1::2] = sign * (0.1 + 0.3 * torch.rand(1, 3, 2, width, generator=g))
    offset[:, 0::2] = 0.25
    inputs = dict(x=x, offset=offset.to(dtype), mask=None,
                  weight=torch.randn(3, 2, 1, 3, generator=g).to(dtype), bias=None)
    leaves = {k: t.clone().requires_grad_(True) for k, t in inputs.items() if t is not None}
    out = run(backend, {**inputs, **leaves}, padding=(0, 1))
    ok, err, allowed = within_tolerance(out, oracle(inputs, padding=(0, 1)), dtype)
    assert ok, f"forward: {err:.3g} > {allowed:.3g}"
    grad_out = torch.randn(out.shape, generator=g).to(dtype)
    grads = torch.autograd.grad(out, list(leaves.values()), grad_out)
    want = oracle_backward(*(inputs[k] for k in NAMES), grad_out, padding=(0, 1))
    for name, got in zip(leaves, grads):
        ok, err, allowed = within_tolerance(got, torch.from_numpy(want[name]), dtype)
        assert ok, f"grad {name}: {err:.3g} > {allowed:.3g}"
