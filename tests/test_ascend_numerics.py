"""The numerics policy (docs/numerics.md) on the AscendC kernels, run on the CPU model: NaN / Inf in
x, offset and mask give exactly the oracle's NaN / +Inf / -Inf pattern in the output and in every
gradient; huge offsets give the bias and zero, finite gradients."""
import numpy as np
import pytest
import torch

from mx_dcn.backends.ascendc.algorithm import run_with_kernels
from mx_dcn.backends.ascendc.kernels import SimKernels
from mx_dcn.problem import describe
from mx_dcn.testing.oracle import oracle_backward, oracle_forward

from test_ascend_support import sim_library

NAMES = ("x", "offset", "mask", "weight", "bias")


def make(seed=0, n=1, c_in=64, h=5, w=6, c_out=8, k=3):
    g = torch.Generator().manual_seed(seed)
    taps = k * k
    t = dict(x=torch.randn(n, c_in, h, w, generator=g), offset=torch.randn(n, 2 * taps, h, w, generator=g) * 1.5,
             mask=torch.rand(n, taps, h, w, generator=g), weight=torch.randn(c_out, c_in, k, k, generator=g) / 24,
             bias=torch.randn(c_out, generator=g))
    return t, dict(padding=1)


def poison(kind, t):
    """Put non-finite / extreme values into a copy of the inputs, as the policy's table lists them."""
    t = {name: v.clone() for name, v in t.items()}
    if kind == "x_nan":
        t["x"][0, 5, 2, 3] = float("nan")
    elif kind == "x_inf_next_to_padding":
        t["x"][0, 7, 0, 0] = float("inf")
        t["offset"][0, 0::2, 0, 0] = -0.5      # samples of pixel (0, 0) at y = base - 0.5
    elif kind == "offset_nonfinite":
        t["offset"][0, 0, 1, 1] = float("nan")
        t["offset"][0, 3, 2, 2] = float("inf")
        t["offset"][0, 6, 3, 4] = float("-inf")
    elif kind == "offset_huge":
        t["offset"].fill_(1e6)
    elif kind == "mask_nonfinite":
        t["mask"][0, 0, 1, 1] = float("nan")
        t["mask"][0, 4, 2, 2] = float("inf")
        t["mask"][0, 8, 4, 5] = float("-inf")
        t["offset"][0, 16:18, 4, 5] = 1e6     # that -Inf mask multiplies an outside sample: NaN
    return t


def same_pattern(got, want, what):
    got, want = got.detach().double(), torch.as_tensor(want, dtype=torch.float64)
    for name, fn in (("NaN", torch.isnan), ("+Inf", torch.isposinf), ("-Inf", torch.isneginf)):
        g, w = fn(got), fn(want)
        assert torch.equal(g, w), f"{what}: {name} pattern differs ({int(g.sum())} got, {int(w.sum())} expected)"
    finite = torch.isfinite(want)
    err = float((got[finite] - want[finite]).abs().max()) if finite.any() else 0.0
    scale = float(want[finite].abs().max()) if finite.any() else 0.0
    assert err <= 1e-4 * (1 + scale), f"{what}: max error {err:.3e}"


@pytest.mark.parametrize("kind", ["x_nan", "x_inf_next_to_padding", "offset_nonfinite", "offset_huge",
                                  "mask_nonfinite"])
def test_nonfinite_inputs_follow_the_policy(kind):
    base, args = make()
    t = {k: v.requires_grad_(True) for k, v in poison(kind, base).items()}
    p = describe(*(t[k] for k in NAMES), **args)
    out = run_with_kernels(p, *(t[k] for k in NAMES), SimKernels(sim_library(), core_num=5))
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(9))
    out.backward(grad)
    with np.errstate(invalid="ignore", over="ignore"):
        want = oracle_forward(*(t[k] for k in NAMES), **args)
        grads = oracle_backward(*(t[k] for k in NAMES), grad, **args)
    same_pattern(out, want, f"{kind} forward")
    for name in NAMES:
        same_pattern(t[name].grad, grads[name], f"{kind} grad {name}")
    if kind == "offset_huge":
        assert torch.equal(out.detach(), t["bias"].detach().view(1, -1, 1, 1).expand_as(out))
        for name in ("x", "offset", "mask", "weight"):
            assert float(t[name].grad.abs().max()) == 0.0, name
