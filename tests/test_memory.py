"""Memory: a forward+backward that needs more workspace than the budget runs in chunks instead of
failing, with the results of an unchunked run, on every backend available here; the memory it
takes stays bounded by the budget; bad budgets and impossible allocations give clear errors.

Policy (docs/reliability.md): backends chunk the batch, then the output pixels, down to one output
row; the budget bounds the chunked workspace. What one row (plus, for the cpu kernel, one image's
channels-last copy) needs is the minimum and runs even above the budget. An allocation the
machine cannot make raises torch's RuntimeError naming the bytes, before any work.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import mx_dcn
from mx_dcn.testing.cases import Case, within_tolerance

BACKENDS = [n for n in mx_dcn.backend_names()
            if "cpu" in mx_dcn.get_backend(n).device_types and mx_dcn.get_backend(n).available()]
NAMES = ("x", "offset", "mask", "weight", "bias")
MIB = 1 << 20
# Per image: 64 channels x 9 taps x 576 pixels of columns (1.3 MB in float32); the batch needs 4 MB
# of columns, the cpu kernel's tiles at most 1 MB each and the portable backend's estimate 48 MB.
CASE = Case("memory", 3, 64, 24, 24, 64)
# Needs more than 2 MiB unbounded (about 3.2 MB), while its per-image minimum (the channels-last
# copies and per-image gradients, about 1.4 MB) still fits 2 MiB.
LARGER_CASE = Case("memory-larger", 3, 64, 40, 40, 64)


def forward_backward(backend, dtype, budget=None, case=CASE):
    inputs = case.make_inputs(dtype, seed=11)
    leaves = {k: v.requires_grad_(True) for k, v in inputs.items() if v is not None}
    with mx_dcn.use_backend(backend):
        if budget is None:
            out = mx_dcn.modulated_deform_conv2d(*(inputs[k] for k in NAMES), **case.args())
        else:
            with mx_dcn.workspace_budget(budget):
                out = mx_dcn.modulated_deform_conv2d(*(inputs[k] for k in NAMES), **case.args())
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    with mx_dcn.workspace_budget(budget or mx_dcn.get_workspace_budget()):
        grads = torch.autograd.grad(out, list(leaves.values()), grad_out)
    return (out.detach(), *grads)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", (torch.float64, torch.float32))
def test_smallest_budget_runs_in_chunks_with_unchunked_results(backend, dtype):
    chunked = forward_backward(backend, dtype, budget=MIB)
    whole = forward_backward(backend, dtype, budget=1 << 30)
    for name, got, want in zip(("output",) + NAMES, chunked, whole):
        ok, err, allowed = within_tolerance(got, want, dtype)
        assert ok, f"{name}: chunked differs from unchunked by {err:.3g} > {allowed:.3g}"


@pytest.mark.skipif("cpu" not in BACKENDS, reason="the cpu kernel (mx_dcn._C) is not built")
@pytest.mark.parametrize("budget, case", ((MIB, CASE), (2 * MIB, LARGER_CASE)))
def test_cpu_kernel_workspace_stays_within_the_budget(budget, case):
    from mx_dcn import ops
    ops.reset_workspace_peak()
    forward_backward("cpu", torch.float32, budget=1 << 30, case=case)
    unbounded = ops.workspace_peak_bytes()
    assert unbounded > budget, "the problem must need more than the budget for this test to mean anything"
    ops.reset_workspace_peak()
    forward_backward("cpu", torch.float32, budget=budget, case=case)
    assert ops.workspace_peak_bytes() <= budget


_RSS_PROBE = r"""
import resource, sys, warnings, torch, mx_dcn
backend, budget = sys.argv[1], int(sys.argv[2])
g = torch.Generator().manual_seed(0)
n, c, h, w = 32, 64, 48, 48
x = torch.randn(n, c, h, w, generator=g, requires_grad=True)
off = torch.randn(n, 18, h, w, generator=g, requires_grad=True)
mask = torch.rand(n, 9, h, w, generator=g, requires_grad=True)
weight = torch.randn(c, c, 3, 3, generator=g, requires_grad=True)
with mx_dcn.use_backend(backend):  # warm up allocator and kernels on one image
    mx_dcn.modulated_deform_conv2d(x[:1].detach(), off[:1].detach(), mask[:1].detach(), weight.detach(), padding=1)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with mx_dcn.use_backend(backend), mx_dcn.workspace_budget(budget):
    out = mx_dcn.modulated_deform_conv2d(x, off, mask, weight, padding=1)
    out.backward(torch.ones_like(out))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown * 1024)
"""


# Not strict: peak RSS depends on the allocator (under the sanitizer's allocator it stays in bounds).
# The cpu kernel only: the portable backend's peak RSS under a 4 MiB budget depends on glibc's
# allocator and grows with the batch (~+68 MiB over its results at N=16, ~+100 MiB at N=32; a known
# gap, docs/reliability.md), so a check of it could not fail reliably -- and took ~100 s of CI.
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "portable"])
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="peak RSS under AddressSanitizer's allocator says nothing about production")
def test_peak_memory_of_a_large_batch_is_bounded_by_the_budget(backend):
    # Unchunked, the columns alone are 32 x 64 x 9 x 2304 x 4 B = 170 MB (the backward needs twice
    # that); chunked under 4 MiB, the process grows by the inputs' gradients and the output
    # (~70 MB) plus a bounded working set. Measured as peak RSS in a fresh process.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", _RSS_PROBE, backend, str(4 * MIB)], capture_output=True,
                          text=True, timeout=600, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    grown = int(done.stdout.split()[-1])
    results = 4 * (32 * 64 * 48 * 48 * 2 + 32 * 27 * 48 * 48)   # grad x + output, grad offset + mask
    assert grown <= results + 96 * MIB, f"peak RSS grew by {grown / MIB:.0f} MiB (results {results / MIB:.0f} MiB)"


def test_bad_budgets_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="nbytes"):
        mx_dcn.set_workspace_budget(1000)
    with pytest.raises(ValueError, match="nbytes"):
        with mx_dcn.workspace_budget(0):
            pass
    for raw in ("abc", "0.5", "-3"):
        monkeypatch.setenv("MX_DCN_WORKSPACE_MB", raw)
        with pytest.raises(ValueError, match="MX_DCN_WORKSPACE_MB"):
            mx_dcn.get_workspace_budget()
        inputs = CASE.make_inputs(torch.float32)
        for backend in BACKENDS:  # and a call under that environment fails the same way
            with mx_dcn.use_backend(backend), pytest.raises(ValueError, match="MX_DCN_WORKSPACE_MB"):
                mx_dcn.modulated_deform_conv2d(*(inputs[k] for k in NAMES), **CASE.args())


def _impossible_problem():
    """Stride-0 (expanded) inputs of negligible storage whose output needs 2^48 bytes: more than
    any machine's address space, so the allocation fails under every overcommit setting."""
    n = 1 << 32
    x = torch.zeros(1, 1, 1, 1).expand(n, 1, 32, 32)
    offset = torch.zeros(1, 1, 1, 1).expand(n, 2, 32, 32)
    weight = torch.ones(4, 1, 1, 1)
    return (x, offset, None, weight, None), n * 4 * 32 * 32 * 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_impossible_allocation_is_a_clear_error(backend):
    args, nbytes = _impossible_problem()
    with mx_dcn.use_backend(backend), pytest.raises(RuntimeError) as info:
        mx_dcn.modulated_deform_conv2d(*args)
    # The exact byte count proves the size arithmetic did not wrap on the way to the allocator.
    assert str(nbytes) in str(info.value), str(info.value)


# ----------------------------------------------------------------------------------------------
# The cpu kernel's workspace cache (buffers kept between calls, so a call does not fault in fresh pages)

def _cpu_call(case, seed):
    from mx_dcn import ops
    inputs = case.make_inputs(torch.float32, seed=seed)
    leaves = [inputs[k].requires_grad_(True) for k in NAMES]
    out = ops.deform_conv2d(*leaves, (1, 1), (1, 1), (1, 1), 1, 1)
    grads = torch.autograd.grad(out, leaves, torch.ones_like(out))
    return (out.detach(), *grads)


@pytest.mark.skipif("cpu" not in BACKENDS, reason="the cpu kernel (mx_dcn._C) is not built")
def test_cpu_workspace_cache_keeps_buffers_within_its_limit_and_changes_no_result():
    limit = mx_dcn.get_workspace_cache_limit()
    try:
        mx_dcn.set_workspace_cache_limit(0)
        assert mx_dcn.workspace_cache_bytes() == 0
        uncached = _cpu_call(CASE, seed=3)
        assert mx_dcn.workspace_cache_bytes() == 0, "a disabled cache must keep nothing"

        mx_dcn.set_workspace_cache_limit(64 * MIB)
        first = _cpu_call(CASE, seed=3)
        held = mx_dcn.workspace_cache_bytes()
        assert 0 < held <= 64 * MIB
        again = _cpu_call(CASE, seed=3)  # served from the cache
        assert mx_dcn.workspace_cache_bytes() == held, "a repeated call must reuse, not add, buffers"
        for got_a, got_b, want in zip(first, again, uncached):
            assert torch.equal(got_a, want) and torch.equal(got_b, want)

        # A smaller limit frees what is beyond it, now.
        mx_dcn.set_workspace_cache_limit(MIB)
        assert mx_dcn.workspace_cache_bytes() <= MIB
        _cpu_call(CASE, seed=4)
        assert mx_dcn.workspace_cache_bytes() <= MIB
        mx_dcn.release_workspace_cache()
        assert mx_dcn.workspace_cache_bytes() == 0
    finally:
        mx_dcn.set_workspace_cache_limit(limit)


@pytest.mark.skipif("cpu" not in BACKENDS, reason="the cpu kernel (mx_dcn._C) is not built")
def test_cpu_workspace_cache_never_reuses_memory_a_result_still_views():
    """With a 1x1 kernel the grad weight the backward returns is a view of its accumulation buffer;
    that buffer must not be handed to the next call (it would overwrite the first call's result)."""
    from mx_dcn import ops
    x1, x2 = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    offset, mask = torch.randn(2, 2, 5, 5), torch.rand(2, 1, 5, 5)
    weight, bias = torch.randn(6, 8, 1, 1), torch.randn(6)

    def grad_weight(x):
        w = weight.clone().requires_grad_(True)
        out = ops.deform_conv2d(x, offset, mask, w, bias, (1, 1), (0, 0), (1, 1), 1, 1)
        return torch.autograd.grad(out, w, torch.ones_like(out))[0]

    first = grad_weight(x1)
    kept = first.clone()
    second = grad_weight(x2)
    assert not torch.equal(second, kept), "the two calls must differ for this test to mean anything"
    assert torch.equal(first, kept), "a later call overwrote an earlier call's grad weight"


def test_bad_workspace_cache_settings_are_clear_errors(monkeypatch):
    for bad in (-1, 1.5, True, "64"):
        with pytest.raises(ValueError, match="nbytes"):
            mx_dcn.set_workspace_cache_limit(bad)
    for raw in ("abc", "-3", "inf", "nan"):
        monkeypatch.setenv("MX_DCN_WORKSPACE_CACHE_MB", raw)
        with pytest.raises(ValueError, match="MX_DCN_WORKSPACE_CACHE_MB"):
            mx_dcn.workspace.cache_limit_from_env()
    monkeypatch.setenv("MX_DCN_WORKSPACE_CACHE_MB", "0.5")
    assert mx_dcn.workspace.cache_limit_from_env() == MIB // 2


@pytest.mark.skipif("cpu" not in BACKENDS, reason="the cpu kernel (mx_dcn._C) is not built")
def test_a_malformed_cache_setting_fails_the_first_use_of_the_kernel():
    env = dict(os.environ, MX_DCN_WORKSPACE_CACHE_MB="lots")
    code = "import torch, mx_dcn.ops as o; o.load()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode != 0 and "MX_DCN_WORKSPACE_CACHE_MB" in done.stderr, done.stderr[-2000:]
