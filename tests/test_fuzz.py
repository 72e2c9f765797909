"""Property-based tests: random valid problems match the float64 oracle on every backend available
here (forward and backward), random invalid problems raise a ValueError/TypeError naming the
argument (never a crash, never a result), and huge finite offsets give zeros and finite gradients.

CI runs a fixed, bounded set of examples (derandomized). A long campaign:
    MX_DCN_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz.py
(MX_DCN_FUZZ_SEED=<int> draws a different random sequence instead of the fixed one).
"""
from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, seed, settings
from hypothesis import strategies as st

import mx_dcn
from mx_dcn.testing.cases import within_tolerance
from mx_dcn.testing.oracle import oracle_backward, oracle_forward

_CAMPAIGN = int(os.environ.get("MX_DCN_FUZZ_EXAMPLES", "0"))
_SEED = os.environ.get("MX_DCN_FUZZ_SEED")


def fuzz(ci_examples: int):
    """Hypothesis settings: `ci_examples` derandomized examples, or the campaign's count/seed."""
    def wrap(test):
        test = settings(max_examples=_CAMPAIGN or ci_examples, deadline=None, database=None,
                        derandomize=_SEED is None, print_blob=True,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                               HealthCheck.filter_too_much])(test)
        return seed(int(_SEED))(test) if _SEED is not None else test
    return wrap


def cpu_backends():
    """Every backend that is available on this machine and serves CPU tensors."""
    names = []
    for name in mx_dcn.backend_names():
        backend = mx_dcn.get_backend(name)
        if "cpu" in backend.device_types and backend.available():
            names.append(name)
    return names


BACKENDS = cpu_backends()
TENSOR_NAMES = ("x", "offset", "mask", "weight", "bias")


# --------------------------------------------------------------------------- valid problems


@st.composite
def problems(draw, offsets=("small", "integer", "outside", "boundary", "large"),
             dtypes=(torch.float64, torch.float32, torch.float32, torch.float16, torch.bfloat16)):
    """A valid problem small enough for the oracle: (kwargs for the op, dtype)."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    groups = draw(st.sampled_from((1, 1, 2, 3)))
    dg = draw(st.sampled_from((1, 1, 2, 3)))
    c_in = groups * dg // math.gcd(groups, dg) * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 3))
    n = draw(st.sampled_from((1, 2, 1, 2, 0)))

    def extent(out, k, s, p, d):
        # An input size giving `out` outputs (plus up to s-1 unused pixels); at least 1 pixel.
        size = (out - 1) * s + d * (k - 1) + 1 - 2 * p + draw(st.integers(0, s - 1))
        return size if size >= 1 else draw(st.integers(1, 3))

    h = extent(draw(st.integers(1, 5)), kh, sh, ph, dh)
    w = extent(draw(st.integers(1, 5)), kw, sw, pw, dw)
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    assert h_out >= 1 and w_out >= 1
    # Keep the float64 oracle fast: it loops over (image, group, tap, pixel) in Python.
    assume(max(n, 1) * dg * kh * kw * h_out * w_out <= 1500)

    dtype = draw(st.sampled_from(dtypes))
    kind = draw(st.sampled_from(offsets))
    has_mask, has_bias = draw(st.booleans()), draw(st.booleans())
    mask_kind = draw(st.sampled_from(("unit", "zeros", "signed")))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2 ** 31 - 1)))
    f64 = dict(generator=g, dtype=torch.float64)
    taps = dg * kh * kw

    x = torch.randn(n, c_in, h, w, **f64)
    weight = torch.randn(c_out, c_in // groups, kh, kw, **f64)
    off_shape = (n, 2 * taps, h_out, w_out)
    if kind == "small":
        offset = torch.randn(off_shape, **f64) * 1.5
    elif kind == "integer":          # samples on integer points: the floor-side derivative
        offset = torch.randint(-2, 3, off_shape, generator=g).double()
    elif kind == "outside":          # spread past every edge
        offset = (torch.rand(off_shape, **f64) - 0.5) * 2.5 * max(h, w)
    elif kind == "large":            # far outside, any sign (finite in every dtype)
        offset = torch.sign(torch.randn(off_shape, **f64)) * 10 ** (torch.rand(off_shape, **f64) * 4 + 0.5)
    else:                            # "boundary": samples exactly on -1, -0.5, 0, H-1, H-0.5, H
        offset = _boundary_offsets(off_shape, h, w, (kh, kw), (sh, sw), (ph, pw), (dh, dw), dg, g)
    mask = None
    if has_mask:
        mask = torch.rand(n, taps, h_out, w_out, **f64)
        if mask_kind == "zeros":
            mask = torch.where(torch.rand(mask.shape, **f64) < 0.3, torch.zeros_like(mask), mask)
        elif mask_kind == "signed":  # the mask is used as given: negative and > 1 are legal
            mask = torch.randn(mask.shape, **f64) * 2
    bias = torch.randn(c_out, **f64) if has_bias else None
    if dtype != torch.float64:
        offset = _away_from_integers(offset, dtype)
    cast = lambda t: None if t is None else t.to(dtype)  # noqa: E731
    kwargs = dict(x=cast(x), offset=cast(offset), mask=cast(mask), weight=cast(weight), bias=cast(bias),
                  stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups,
                  deformable_groups=dg)
    return kwargs, dtype


def _away_from_integers(offset, dtype):
    """Moves offsets whose fractional part (in `dtype`) is within 0.01 of an integer, but not on
    it, to integer + 0.25. Near an integer the offset gradient jumps (floor-side derivative) and a
    float32 coordinate may legitimately round onto the other side than the float64 oracle's."""
    rounded = offset.to(dtype).double()
    frac = rounded - rounded.round()
    near = (frac.abs() < 0.01) & (frac != 0)
    return torch.where(near, rounded.round() + 0.25, offset)


def _boundary_offsets(shape, h, w, k, s, p, d, dg, g):
    """Offsets that put every sample exactly on one of the box edges or just inside them."""
    n, _, h_out, w_out = shape
    ho = torch.arange(h_out, dtype=torch.float64).view(1, 1, h_out, 1)
    wo = torch.arange(w_out, dtype=torch.float64).view(1, 1, 1, w_out)
    ki = torch.arange(k[0], dtype=torch.float64).repeat_interleave(k[1]).repeat(dg).view(1, -1, 1, 1)
    kj = torch.arange(k[1], dtype=torch.float64).repeat(k[0] * dg).view(1, -1, 1, 1)
    base_y = ho * s[0] - p[0] + ki * d[0]
    base_x = wo * s[1] - p[1] + kj * d[1]
    targets_y = torch.tensor([-1.0, -0.5, 0.0, h - 1.0, h - 0.5, float(h)], dtype=torch.float64)
    targets_x = torch.tensor([-1.0, -0.5, 0.0, w - 1.0, w - 0.5, float(w)], dtype=torch.float64)
    taps = ki.shape[1]
    pick = lambda t: t[torch.randint(0, 6, (n, taps, h_out, w_out), generator=g)]  # noqa: E731
    dy = pick(targets_y) - base_y
    dx = pick(targets_x) - base_x
    return torch.stack((dy, dx), dim=2).reshape(shape)


def _run(backend, kwargs):
    with mx_dcn.use_backend(backend):
        return mx_dcn.modulated_deform_conv2d(**kwargs)


def _check_close(name, got, want_np, dtype):
    want = torch.from_numpy(np.ascontiguousarray(want_np))
    assert got is not None, f"{name}: no gradient"
    assert tuple(got.shape) == tuple(want.shape), f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    assert got.dtype == dtype, f"{name}: dtype {got.dtype} != {dtype}"
    ok, err, allowed = within_tolerance(got, want, dtype)
    assert ok, f"{name}: max error {err:.3g} > allowed {allowed:.3g}"


def _declines(backend, kwargs) -> bool:
    """True when `backend` declares a constraint this call breaks; then forcing it must raise."""
    problem = mx_dcn.describe(**kwargs)
    if not mx_dcn.get_backend(backend).violations(problem):
        return False
    with pytest.raises(mx_dcn.BackendUnusableError):
        _run(backend, kwargs)
    return True


@pytest.mark.parametrize("backend", BACKENDS)
@fuzz(60)
@given(problem=problems())
def test_valid_problems_match_oracle_forward_and_backward(backend, problem):
    kwargs, dtype = problem
    if _declines(backend, kwargs):
        return
    args = {k: v for k, v in kwargs.items() if k not in TENSOR_NAMES}
    leaves = {k: kwargs[k].clone().requires_grad_(True) for k in TENSOR_NAMES if kwargs[k] is not None}
    out = _run(backend, {**kwargs, **leaves})
    _check_close("output", out, oracle_forward(*(kwargs[k] for k in TENSOR_NAMES), **args), dtype)

    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    grads = torch.autograd.grad(out, list(leaves.values()), grad_out, allow_unused=True)
    want = oracle_backward(*(kwargs[k] for k in TENSOR_NAMES), grad_out, **args)
    for name, got in zip(leaves, grads):
        if got is None:  # no gradient path (e.g. an empty batch) is a zero gradient
            got = torch.zeros_like(leaves[name])
        _check_close(f"grad {name}", got, want[name], dtype)


@pytest.mark.parametrize("backend", BACKENDS)
@fuzz(40)
@given(problem=problems(offsets=("large",), dtypes=(torch.float64, torch.float32, torch.float16, torch.bfloat16)),
       magnitude=st.sampled_from((1e4, 1e6, 3e9, 1e20, 1e30)))
def test_huge_offsets_give_bias_only_and_zero_finite_gradients(backend, problem, magnitude):
    kwargs, dtype = problem
    # Far outside in every direction, finite in the dtype (non-finite offsets: test_numerics.py).
    magnitude = min(magnitude, torch.finfo(dtype).max)
    sign = torch.sign(kwargs["offset"].double())
    kwargs["offset"] = (sign * magnitude).to(dtype)
    assert torch.isfinite(kwargs["offset"]).all()
    if _declines(backend, kwargs):
        return
    leaves = {k: kwargs[k].clone().requires_grad_(True) for k in TENSOR_NAMES if kwargs[k] is not None}
    out = _run(backend, {**kwargs, **leaves})
    bias = kwargs["bias"]
    want = torch.zeros(out.shape, dtype=dtype) if bias is None else bias.view(1, -1, 1, 1).expand(out.shape)
    assert torch.equal(out.detach(), want), "every sample is outside: the output must be the bias exactly"
    grad_out = torch.ones_like(out)
    grads = torch.autograd.grad(out, list(leaves.values()), grad_out, allow_unused=True)
    for name, got in zip(leaves, grads):
        if got is None:
            continue  # no gradient path at all is a zero gradient
        assert torch.isfinite(got).all(), f"grad {name} is not finite"
        if name == "bias":
            assert torch.allclose(got.double(), grad_out.double().sum((0, 2, 3)), rtol=1e-2)
        else:
            assert not got.any(), f"grad {name} must be zero for outside samples"


# --------------------------------------------------------------------------- invalid problems


def _small_valid(draw):
    kwargs, _ = draw(problems(offsets=("small",), dtypes=(torch.float32,)))
    assume(kwargs["x"].shape[0] > 0)
    return kwargs


def _word(name: str, message: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None


# Invalid calls whose arguments are well-typed tensors and ints (what a native op receives).
SHAPE_KINDS = (
    "weight_cin", "groups_not_divisor", "cout_not_divisible", "dg_not_divisor", "offset_channels",
    "mask_channels", "offset_spatial", "mask_spatial", "offset_batch", "mask_batch", "bias_length",
    "negative_padding", "bad_stride", "bad_dilation", "bad_groups", "bad_dg", "int_dtype", "mixed_float",
    "ndim", "too_small", "complex_dtype")
ALL_KINDS = SHAPE_KINDS + ("mixed_device", "non_tensor_arg", "bad_scalar_arg")


@st.composite
def invalid_calls(draw, kinds=ALL_KINDS):
    """(kwargs, allowed leading argument names, the argument the error must mention)."""
    kw = _small_valid(draw)
    x, offset, mask, weight, bias = (kw[k] for k in TENSOR_NAMES)
    n, c_in, h, w = x.shape
    c_out, _, kh, kw_ = weight.shape
    groups, dg = kw["groups"], kw["deformable_groups"]
    present = [k for k in TENSOR_NAMES if kw[k] is not None]
    kind = draw(st.sampled_from(kinds))

    def other(t, shape):
        return torch.randn(shape, dtype=t.dtype)

    if kind == "weight_cin":
        delta = draw(st.sampled_from((-1, 1, 2)))
        assume(c_in // groups + delta >= 1)
        kw["weight"] = other(weight, (c_out, c_in // groups + delta, kh, kw_))
        return kw, ("weight",), "weight"
    if kind == "groups_not_divisor":
        kw["groups"] = c_in + draw(st.integers(1, 3))
        return kw, ("groups",), "groups"
    if kind == "cout_not_divisible":
        assume(groups > 1)
        kw["weight"] = other(weight, (c_out + 1, c_in // groups, kh, kw_))
        if bias is not None:
            kw["bias"] = other(bias, (c_out + 1,))
        return kw, ("groups",), "groups"
    if kind == "dg_not_divisor":
        kw["deformable_groups"] = c_in + draw(st.integers(1, 3))
        return kw, ("deformable_groups",), "deformable_groups"
    if kind in ("offset_channels", "mask_channels"):
        name = kind.split("_")[0]
        assume(kw[name] is not None)
        shape = list(kw[name].shape)
        shape[1] += draw(st.sampled_from((-1, 1, shape[1])))
        assume(shape[1] >= 1)
        kw[name] = other(kw[name], shape)
        return kw, (name,), name
    if kind in ("offset_spatial", "mask_spatial", "offset_batch", "mask_batch"):
        name, what = kind.split("_")
        assume(kw[name] is not None)
        shape = list(kw[name].shape)
        axis = 0 if what == "batch" else draw(st.sampled_from((2, 3)))
        shape[axis] += draw(st.sampled_from((-1, 1, 2)))
        assume(shape[axis] >= 0)
        kw[name] = other(kw[name], shape)
        return kw, (name,), name
    if kind == "bias_length":
        shape = draw(st.sampled_from(((c_out + 1,), (c_out - 1,), (1, c_out), (c_out, 1))))
        assume(shape != (c_out,) and min(shape) >= 0)
        kw["bias"] = torch.randn(shape)
        return kw, ("bias",), "bias"
    if kind == "negative_padding":
        kw["padding"] = draw(st.sampled_from((-1, (-1, 0), (0, -2), [-3, -3])))
        return kw, ("padding",), "padding"
    if kind in ("bad_stride", "bad_dilation"):
        name = kind.split("_")[1]
        kw[name] = draw(st.sampled_from((0, -1, (0, 1), (1, 0), (1, -2))))
        return kw, (name,), name
    if kind in ("bad_groups", "bad_dg"):
        name = "groups" if kind == "bad_groups" else "deformable_groups"
        kw[name] = draw(st.sampled_from((0, -1, -2)))
        return kw, (name,), name
    if kind == "int_dtype":
        name = draw(st.sampled_from(present))
        dtype = draw(st.sampled_from((torch.int32, torch.int64, torch.bool, torch.uint8)))
        kw[name] = kw[name].to(dtype)
        return kw, (name,), name
    if kind == "complex_dtype":
        name = draw(st.sampled_from(present))
        kw[name] = kw[name].to(torch.complex64)
        return kw, (name,), name
    if kind in ("mixed_float", "mixed_device"):
        name = draw(st.sampled_from(present))
        if kind == "mixed_float":
            kw[name] = kw[name].to(draw(st.sampled_from((torch.float64, torch.float16, torch.bfloat16))))
        else:
            kw[name] = kw[name].to("meta")
        # Changing x makes every other tensor the odd one out; the error names one and x.
        return kw, (present if name == "x" else (name,)), name
    if kind == "ndim":
        name = draw(st.sampled_from(present))
        t = kw[name]
        kw[name] = t.unsqueeze(0) if draw(st.booleans()) or t.dim() == 1 else t[0]
        return kw, (name,), name
    if kind == "non_tensor_arg":
        name = draw(st.sampled_from(("x", "offset", "weight", "mask", "bias")))
        assume(kw[name] is not None or name in ("x", "offset", "weight"))
        value = kw[name] if kw[name] is not None else torch.zeros(1)
        kw[name] = draw(st.sampled_from((value.tolist(), value.numpy(), 1.0, "x", (1, 2))))
        return kw, (name,), name
    if kind == "bad_scalar_arg":
        name = draw(st.sampled_from(("stride", "padding", "dilation", "groups", "deformable_groups")))
        kw[name] = draw(st.sampled_from((1.5, "1", None, torch.tensor(1), (1, 1, 1), [], True, (1.0, 1))))
        return kw, (name,), name
    # too_small: an image smaller than the (dilated) kernel without enough padding.
    kw["padding"] = 0
    extent_h = kw["dilation"][0] * (kh - 1) + 1
    assume(extent_h > 1)
    kw["x"] = torch.randn(n, c_in, extent_h - 1, w)
    return kw, ("x",), "x"


def _entry_points(kwargs, backend):
    """Every public way to make the call (v1 entry points only when there is no mask)."""
    yield "modulated_deform_conv2d", lambda: _run(backend, kwargs)
    args = [kwargs[k] for k in ("x", "offset", "mask", "weight", "bias", "stride", "padding", "dilation",
                                "groups", "deformable_groups")]
    yield "ModulatedDeformConv2dFunction.apply", lambda: _apply(backend, args)
    yield "explain", lambda: mx_dcn.explain(**kwargs)
    if kwargs["mask"] is None:
        v1 = dict(kwargs)
        v1.pop("mask")
        v1["bias"] = False if v1["bias"] is None else v1["bias"]
        yield "deform_conv2d", lambda: _v1(backend, v1)


def _apply(backend, args):
    with mx_dcn.use_backend(backend):
        return mx_dcn.ModulatedDeformConv2dFunction.apply(*args)


def _v1(backend, kwargs):
    with mx_dcn.use_backend(backend):
        return mx_dcn.deform_conv2d(**kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
@fuzz(150)
@given(call=invalid_calls())
def test_invalid_problems_raise_naming_the_argument(backend, call):
    kwargs, leading, mentioned = call
    for entry, fn in _entry_points(kwargs, backend):
        with pytest.raises((ValueError, TypeError)) as info:
            fn()
        message = str(info.value)
        head = message.split(":", 1)[0]
        assert head in leading, f"{entry}: error should start with one of {leading}: {message!r}"
        assert _word(mentioned, message), f"{entry}: error should mention {mentioned!r}: {message!r}"


# --------------------------------------------------------------------------- the native op itself


def _native_op():
    """torch.ops.mx_dcn.deform_conv2d when the extension is built (None otherwise)."""
    try:
        from mx_dcn import ops
        ops.load()
    except ImportError:
        return None
    return torch.ops.mx_dcn.deform_conv2d


def _pair_list(v):
    return [v, v] if isinstance(v, int) else list(v)


def _hits_truncation_bug(kwargs) -> bool:
    """An image too small for the kernel whose output-size numerator is in (-stride, 0): the known
    bug of test_native_op_rejects_an_image_smaller_than_the_kernel_with_stride_2."""
    x, weight = kwargs["x"], kwargs["weight"]
    if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor) or x.dim() != 4 or weight.dim() != 4:
        return False
    for axis in (0, 1):
        s, p, d = (_pair_list(kwargs[k])[axis] for k in ("stride", "padding", "dilation"))
        numerator = x.shape[2 + axis] + 2 * p - d * (weight.shape[2 + axis] - 1) - 1
        if numerator < 0 and s > 0 and -numerator < s:
            return True
    return False


@pytest.mark.skipif(_native_op() is None, reason="the extension mx_dcn._C is not built")
@fuzz(150)
@given(call=invalid_calls(kinds=SHAPE_KINDS))
def test_native_op_rejects_invalid_calls_without_crashing(call):
    """The registered op can be called directly (torch.ops), past mx_dcn's validation: it must
    check its arguments itself before touching memory."""
    kwargs = call[0]
    assume(not _hits_truncation_bug(kwargs))  # tracked by its own test below
    args = [kwargs[k] for k in TENSOR_NAMES] + [_pair_list(kwargs[k]) for k in ("stride", "padding", "dilation")]
    with pytest.raises((RuntimeError, ValueError, TypeError)):
        _native_op()(*args, kwargs["groups"], kwargs["deformable_groups"])


@pytest.mark.skipif(_native_op() is None, reason="the extension mx_dcn._C is not built")
@pytest.mark.parametrize("bad", ("shape", "batch", "dtype", "ndim"))
def test_native_backward_rejects_a_bad_grad_output(bad):
    x, offset, w = torch.randn(2, 2, 4, 4), torch.zeros(2, 18, 4, 4), torch.randn(3, 2, 3, 3)
    grad = {"shape": torch.randn(2, 3, 4, 5), "batch": torch.randn(1, 3, 4, 4),
            "dtype": torch.randn(2, 3, 4, 4, dtype=torch.float64), "ndim": torch.randn(3, 4, 4)}[bad]
    with pytest.raises((RuntimeError, ValueError, TypeError), match="grad_output"):
        torch.ops.mx_dcn.deform_conv2d_backward(grad, x, offset, None, w, None, [1, 1], [1, 1], [1, 1], 1, 1,
                                                [True] * 5)


# Bugs the fuzz campaign found in the native op (now fixed): kept as regression tests.
@pytest.mark.skipif(_native_op() is None, reason="the extension mx_dcn._C is not built")
def test_native_op_rejects_an_image_smaller_than_the_kernel_with_stride_2():
    x, offset, weight = torch.randn(1, 1, 1, 1), torch.zeros(1, 4, 1, 1), torch.randn(1, 1, 2, 1)
    try:
        out = _native_op()(x, offset, None, weight, None, [2, 1], [0, 0], [1, 1], 1, 1)
    except (RuntimeError, ValueError):
        return
    raise AssertionError(f"returned a result of shape {tuple(out.shape)}")


@pytest.mark.skipif(_native_op() is None, reason="the extension mx_dcn._C is not built")
def test_native_op_rejects_a_meta_tensor_among_cpu_tensors():
    x, weight = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
    offset = torch.zeros(1, 18, 5, 5, device="meta")
    try:
        out = _native_op()(x, offset, None, weight, None, [1, 1], [1, 1], [1, 1], 1, 1)
    except (RuntimeError, ValueError, TypeError):
        return
    raise AssertionError(f"returned a {out.device} result")
