"""Concurrency: the op called from several Python threads at once gives exactly the results of
sequential calls (forward and backward, on every backend available here); the per-thread controls
(forced backend, strict mode, workspace budget) stay per thread; the selection report and the
one-time fallback warning are thread-safe, including the very first use in a fresh process."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import mx_dcn
from mx_dcn import registry
from mx_dcn.backends.base import Backend, Violation
from mx_dcn.testing.cases import CASES_BY_NAME

THREADS = 8
ROUNDS = 3
BACKENDS = [n for n in mx_dcn.backend_names()
            if "cpu" in mx_dcn.get_backend(n).device_types and mx_dcn.get_backend(n).available()]
NAMES = ("x", "offset", "mask", "weight", "bias")
CASE_NAMES = ("k3x3", "groups2_dg4", "stride_pad_dil_mixed", "v1_no_mask", "k5x5", "dg2", "offsets_outside",
              "c64_groups2_bias_maskzeros")


def in_threads(fn, jobs):
    """Runs fn(job) for every job, THREADS at a time, all released together by a barrier."""
    barrier = threading.Barrier(min(THREADS, len(jobs)))

    def run(job):
        barrier.wait()
        return fn(job)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, jobs))


def forward_backward(backend, case_name, dtype, seed):
    """(output, gradients of every input) of one call with `backend` forced."""
    case = CASES_BY_NAME[case_name]
    inputs = case.make_inputs(dtype, seed=seed)
    leaves = {k: v.requires_grad_(True) for k, v in inputs.items() if v is not None}
    with mx_dcn.use_backend(backend):
        out = mx_dcn.modulated_deform_conv2d(*(inputs[k] for k in NAMES), **case.args())
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
    grads = torch.autograd.grad(out, list(leaves.values()), grad_out)
    return (out.detach(), *grads)


def assert_identical(got, want, what):
    for i, (g, w) in enumerate(zip(got, want)):
        assert torch.equal(g, w), f"{what}: tensor {i} differs from the sequential call " \
                                  f"(max diff {float((g.double() - w.double()).abs().max()):.3g})"


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
def test_threads_give_the_results_of_sequential_calls(dtype):
    # Every (backend, case) pair at once: threads forcing different backends run side by side.
    jobs = [(b, c, dtype, seed) for seed, c in enumerate(CASE_NAMES) for b in BACKENDS] * ROUNDS
    sequential = {job: forward_backward(*job) for job in jobs}
    concurrent = in_threads(lambda job: forward_backward(*job), jobs)
    for job, got in zip(jobs, concurrent):
        assert_identical(got, sequential[job], f"{job[0]} {job[1]}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_thread_workspace_budgets_do_not_leak_between_threads(request, backend):
    # A large problem under the smallest budget (many chunks) next to threads on the default
    # budget: each thread's result must be the one its own budget gives when run alone.
    case = CASES_BY_NAME["c256_stride2_pad0_dil2"]

    def job(budget):
        if budget is None:
            return forward_backward(backend, case.name, torch.float32, 3)
        with mx_dcn.workspace_budget(budget):
            return forward_backward(backend, case.name, torch.float32, 3)

    budgets = [1 << 20, None] * (THREADS // 2)
    sequential = {b: job(b) for b in set(budgets)}
    for budget, got in zip(budgets, in_threads(job, budgets * 2)):
        assert_identical(got, sequential[budget], f"budget {budget}")


def test_forced_backend_and_strict_mode_are_per_thread():
    case = CASES_BY_NAME["k3x3"]
    inputs = case.make_inputs(torch.float32)

    def job(i):
        name = BACKENDS[i % len(BACKENDS)]
        with mx_dcn.use_backend(name), mx_dcn.strict(i % 2 == 0):
            report = mx_dcn.explain(*(inputs[k] for k in NAMES), **case.args())
            return name, report.chosen, report.forced, registry.strict_enabled()

    for i, (name, chosen, forced, strict) in enumerate(in_threads(job, list(range(THREADS * 2)))):
        assert (chosen, forced, strict) == (name, name, i % 2 == 0)
    assert registry.forced_backend() is None and not registry.strict_enabled()


def test_explain_from_many_threads_matches_sequential(monkeypatch):
    # Fresh backend instances, so the threads also race on their lazy creation.
    monkeypatch.setattr(registry, "_instances", {})
    calls = []
    for case_name in CASE_NAMES:
        case = CASES_BY_NAME[case_name]
        meta = {k: (None if v is None else v.to("meta")) for k, v in case.make_inputs(torch.float32).items()}
        calls.append((meta, case.args(), {}))
        calls.append((meta, case.args(), {"device": "npu", "soc": "Ascend910B2"}))
        calls.append((meta, case.args(), {"device": "cuda"}))

    def job(i):
        meta, args, target = calls[i % len(calls)]
        report = mx_dcn.explain(*(meta[k] for k in NAMES), **args, **target)
        return str(report), {n: id(mx_dcn.get_backend(n)) for n in mx_dcn.backend_names()}

    concurrent = in_threads(job, list(range(len(calls) * 2)))
    instances = concurrent[0][1]
    for i, (text, ids) in enumerate(concurrent):
        meta, args, target = calls[i % len(calls)]
        assert text == str(mx_dcn.explain(*(meta[k] for k in NAMES), **args, **target))
        assert ids == instances, "one backend instance per name, whichever thread created it"


class _Rejecting(Backend):
    """A stand-in first backend of the CPU chain that rejects every call, so that every call falls
    back; its violation names the channel count, so two problems give two distinct reasons."""

    name = "rejecting"
    device_types = ("cpu",)

    def violations(self, problem):
        return [Violation("test-rule", f"rejects C_in={problem.in_channels}")]


@pytest.fixture
def rejecting_chain(monkeypatch):
    monkeypatch.setitem(registry._BACKEND_CLASSES, "rejecting", "unused:unused")
    monkeypatch.setitem(registry._instances, "rejecting", _Rejecting())
    monkeypatch.setitem(registry.CHAINS, "cpu", ("rejecting", "portable"))
    registry.reset_warnings()
    yield
    registry.reset_warnings()


def test_fallback_warning_is_issued_once_per_reason_across_threads(rejecting_chain):
    problems = []
    for case_name in ("k3x3", "dg2"):                      # C_in 6 and 8: two distinct reasons
        case = CASES_BY_NAME[case_name]
        problems.append((case.make_inputs(torch.float32), case.args()))

    def job(i):
        inputs, args = problems[i % 2]
        return mx_dcn.modulated_deform_conv2d(*(inputs[k] for k in NAMES), **args)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")                    # count every warning actually issued
        outs = in_threads(job, list(range(THREADS * 2)))
    fallbacks = [str(w.message) for w in caught if "falling back" in str(w.message)]
    assert len(fallbacks) == 2, fallbacks
    assert sorted("C_in=6" in m for m in fallbacks) == [False, True]
    assert all("test-rule" in m and "'portable'" in m for m in fallbacks)
    for i, out in enumerate(outs):                        # and every call still ran, on portable
        assert torch.equal(out, outs[i % 2])


def test_strict_mode_raises_only_in_its_own_thread(rejecting_chain):
    case = CASES_BY_NAME["k3x3"]
    inputs = case.make_inputs(torch.float32)

    def job(i):
        try:
            with mx_dcn.strict(i % 2 == 0), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mx_dcn.modulated_deform_conv2d(*(inputs[k] for k in NAMES), **case.args())
        except mx_dcn.BackendFallbackError:
            return "raised"
        return "ran"

    results = in_threads(job, list(range(THREADS)))
    assert results == ["raised" if i % 2 == 0 else "ran" for i in range(THREADS)]


_FIRST_USE = r"""
import threading, torch, mx_dcn
from mx_dcn.testing.cases import CASES_BY_NAME
case = CASES_BY_NAME["k3x3"]
inputs = case.make_inputs(torch.float32)
barrier, results, errors = threading.Barrier(8), [None] * 8, []
def job(i):
    barrier.wait()
    try:
        results[i] = mx_dcn.modulated_deform_conv2d(*(inputs[k] for k in ("x", "offset", "mask", "weight", "bias")),
                                                    **case.args())
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=job, args=(i,)) for i in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
assert not errors, errors
assert all(torch.equal(r, results[0]) for r in results)
print("chosen", mx_dcn.explain(*(inputs[k] for k in ("x", "offset", "mask", "weight", "bias")), **case.args()).chosen)
"""


def test_first_use_in_a_fresh_process_from_many_threads():
    # Lazy backend creation and extension loading race only once per process: use a new one.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", _FIRST_USE], capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"chosen {BACKENDS[0]}"
