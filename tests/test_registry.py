"""The backend registry: selection by device, the report, forcing, strict mode, the one-time
fallback warning, and the portable backend's workspace budget."""
import os
import subprocess
import sys
import warnings

import pytest
import torch

import mx_dcn
from mx_dcn import registry
from mx_dcn.backends.base import AVAILABLE, Backend, Violation, unavailable
from mx_dcn.testing.cases import Case


def meta_call(c_in=64, c_out=64, h=32, w=32, k=3, dg=1, n=2, mask=True, dtype=torch.float32):
    """Meta tensors for a 3x3 / stride 1 / padding 1 call: nothing is allocated."""
    m = dict(device="meta", dtype=dtype)
    return (torch.empty(n, c_in, h, w, **m), torch.empty(n, 2 * dg * k * k, h, w, **m),
            torch.empty(n, dg * k * k, h, w, **m) if mask else None, torch.empty(c_out, c_in, k, k, **m),
            torch.empty(c_out, **m))


class PickyBackend(Backend):
    """A test backend that takes only calls with an even number of input channels."""

    name = "picky"
    device_types = ("cpu",)

    def __init__(self, ok=True):
        self.ok = ok

    def available(self):
        return AVAILABLE if self.ok else unavailable("picky is switched off")

    def violations(self, problem):
        if problem.in_channels % 2:
            return [Violation("even_channels", f"in_channels must be even, got {problem.in_channels}")]
        return []

    def run(self, problem, x, offset, mask, weight, bias):
        return mx_dcn.get_backend("portable").run(problem, x, offset, mask, weight, bias) + 0


@pytest.fixture
def picky(monkeypatch):
    """Put PickyBackend in front of the CPU chain."""
    backend = PickyBackend()
    monkeypatch.setitem(registry._BACKEND_CLASSES, "picky", "unused:Unused")
    monkeypatch.setitem(registry._instances, "picky", backend)
    monkeypatch.setitem(registry.CHAINS, "cpu", ("picky",) + registry.CHAINS["cpu"])
    registry.reset_warnings()
    yield backend
    registry.reset_warnings()


def small_inputs(c_in):
    return Case("reg", 1, c_in, 5, 5, 2).make_inputs(dtype=torch.float32)


def test_explain_meta_tensors_default_to_cpu():
    report = mx_dcn.explain(*meta_call(), stride=1, padding=1)
    assert report.problem.device_type == "cpu"
    assert report.chain == ("cpu", "portable")
    assert report.chosen in report.chain
    assert set(report.backends) >= {"cpu", "cuda", "ascendc", "cann", "portable"}
    text = str(report)
    for name in ("cpu", "cuda", "ascendc", "cann", "portable"):
        assert name in text
    assert "chain for device 'cpu': cpu -> portable" in text


def test_every_backend_reports_availability_with_reason():
    report = mx_dcn.explain(*meta_call(), padding=1)
    for name, verdict in report.backends.items():
        assert verdict.available == bool(mx_dcn.get_backend(name).available())
        if not verdict.available:
            assert verdict.reason, f"{name} is unavailable without a reason"


def test_explain_npu_target_lists_ascendc_violations():
    report = mx_dcn.explain(*meta_call(c_in=96, dg=2), padding=1, deformable_groups=2, device="npu",
                            soc="Ascend310P3")
    assert report.chain == ("ascendc", "cann", "portable")
    rules = {v.rule for v in report.backends["ascendc"].violations}
    assert {"soc", "c_in_multiple_of_64", "deformable_groups"} <= rules, rules
    assert report.chosen != "ascendc"
    messages = " ".join(v.message for v in report.backends["ascendc"].violations)
    assert "96" in messages and "Ascend310P3" in messages


def test_explain_npu_target_meeting_constraints_has_no_ascendc_violations():
    report = mx_dcn.explain(*meta_call(c_in=128), padding=1, device="npu", soc="Ascend910B2")
    assert report.backends["ascendc"].violations == ()
    # No NPU here: the declared target is assumed to have the kernel installed, so it is chosen.
    assert report.problem.declared_target and report.chosen == "ascendc" and not report.is_fallback
    assert "declared target" in str(report)


def test_selection_picks_first_usable_and_reports_violations(picky):
    odd = mx_dcn.explain(*meta_call(c_in=3, c_out=3), padding=1)
    assert odd.chosen != "picky" and odd.is_fallback
    assert [v.rule for v in odd.backends["picky"].violations] == ["even_channels"]
    assert "even_channels: in_channels must be even, got 3" in str(odd)
    even = mx_dcn.explain(*meta_call(c_in=4, c_out=4), padding=1)
    assert even.chosen == "picky" and not even.is_fallback


def test_fallback_warns_once_naming_the_violation(picky):
    i = small_inputs(3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            mx_dcn.modulated_deform_conv2d(i["x"], i["offset"], i["mask"], i["weight"], i["bias"], padding=1)
    fallback = [w for w in caught if "falling back" in str(w.message)]
    assert len(fallback) == 1
    assert "picky [even_channels] in_channels must be even, got 3" in str(fallback[0].message)


def test_strict_mode_raises_instead_of_falling_back(picky):
    i = small_inputs(3)
    with mx_dcn.strict():
        with pytest.raises(mx_dcn.BackendFallbackError, match="even_channels"):
            mx_dcn.modulated_deform_conv2d(i["x"], i["offset"], i["mask"], i["weight"], i["bias"], padding=1)
    even = small_inputs(4)
    with mx_dcn.strict():  # no fallback needed: runs
        mx_dcn.modulated_deform_conv2d(even["x"], even["offset"], even["mask"], even["weight"], even["bias"],
                                       padding=1)


def test_strict_mode_from_environment(picky, monkeypatch):
    monkeypatch.setenv("MX_DCN_STRICT", "1")
    i = small_inputs(3)
    with pytest.raises(mx_dcn.BackendFallbackError):
        mx_dcn.modulated_deform_conv2d(i["x"], i["offset"], i["mask"], i["weight"], i["bias"], padding=1)


def test_unavailable_backend_is_skipped(picky):
    picky.ok = False
    report = mx_dcn.explain(*meta_call(c_in=4, c_out=4), padding=1)
    assert report.chosen != "picky"
    assert "picky unavailable: picky is switched off" in report.fallback_reasons()


def test_context_manager_forces_backend(picky):
    with mx_dcn.use_backend("portable"):
        report = mx_dcn.explain(*meta_call(c_in=4, c_out=4), padding=1)
    assert report.chosen == "portable" and report.forced == "portable"
    assert mx_dcn.explain(*meta_call(c_in=4, c_out=4), padding=1).chosen == "picky"


def test_forcing_an_unusable_backend_raises(picky):
    i = small_inputs(3)
    with mx_dcn.use_backend("picky"):
        with pytest.raises(mx_dcn.BackendUnusableError, match="'picky' was forced but cannot run .*even_channels"):
            mx_dcn.modulated_deform_conv2d(i["x"], i["offset"], i["mask"], i["weight"], i["bias"], padding=1)
    with mx_dcn.use_backend("cann"):  # an NPU backend cannot be forced onto CPU tensors
        with pytest.raises(mx_dcn.BackendUnusableError, match="does not serve device 'cpu'"):
            mx_dcn.modulated_deform_conv2d(i["x"], i["offset"], i["mask"], i["weight"], i["bias"], padding=1)
    with pytest.raises(ValueError, match="use_backend: expected one of"):
        with mx_dcn.use_backend("nonexistent"):
            pass


def test_resolve_agrees_with_the_report(picky):
    # resolve() answers the common case without building the report; it must pick what the report
    # picks, and raise where the report finds nothing, whatever the forcing and availability.
    from mx_dcn.problem import describe
    for ok in (True, False):
        picky.ok = ok
        for c_in in (3, 4):
            problem = describe(*meta_call(c_in=c_in, c_out=c_in), padding=1, device="cpu")
            for forced in (None, "picky", "portable", "cpu", "cann"):
                with mx_dcn.use_backend(forced):
                    chosen = registry.select(problem).chosen
                    if chosen is None:
                        with pytest.raises(mx_dcn.BackendUnusableError):
                            registry.resolve(problem)
                    else:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            assert registry.resolve(problem).name == chosen, (ok, c_in, forced)


EXPLAIN_SNIPPET = ("import mx_dcn, torch;"
                   "m = dict(device='meta');"
                   "args = (torch.empty(1, 4, 5, 5, **m), torch.empty(1, 18, 5, 5, **m), None,"
                   "        torch.empty(2, 4, 3, 3, **m));"
                   "print(mx_dcn.explain(*args, padding=1).chosen)")


def test_environment_variable_forces_backend():
    env = dict(os.environ, MX_DCN_BACKEND="portable")
    out = subprocess.run([sys.executable, "-c", EXPLAIN_SNIPPET], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "portable"
    env["MX_DCN_BACKEND"] = "bogus"
    bad = subprocess.run([sys.executable, "-c", EXPLAIN_SNIPPET], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and ("MX_DCN_BACKEND: expected one of cpu, cuda, ascendc, cann, portable, "
                                    "got 'bogus'") in bad.stderr


def test_import_loads_no_extension_or_npu():
    code = ("import sys, mx_dcn; bad = [m for m in ('mx_dcn._C', 'torch_npu', 'mx_dcn.backends.cpu', "
            "'mx_dcn.backends.ascendc') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_portable_chunks_under_a_small_budget_give_the_same_result():
    case = Case("chunks", 3, 8, 12, 11, 4, deformable_groups=2, groups=2)
    ref_in = case.make_inputs(seed=9)
    small_in = case.make_inputs(seed=9)
    for t in list(ref_in.values()) + list(small_in.values()):
        t.requires_grad_(True)
    portable = mx_dcn.get_backend("portable")
    with mx_dcn.use_backend("portable"):
        ref = mx_dcn.modulated_deform_conv2d(*[ref_in[k] for k in ("x", "offset", "mask", "weight", "bias")],
                                             padding=1, groups=2, deformable_groups=2)
        with mx_dcn.workspace_budget(1024 * 1024):
            # One image's columns (8*9*132*8 bytes * copies) exceed nothing here, so shrink further by
            # asking the chunker directly: 1 MiB still holds an image -> chunks of images.
            small = mx_dcn.modulated_deform_conv2d(
                *[small_in[k] for k in ("x", "offset", "mask", "weight", "bias")],
                padding=1, groups=2, deformable_groups=2)
    torch.testing.assert_close(small, ref, rtol=0, atol=1e-13)
    ref.sum().backward()
    small.sum().backward()
    for k in ref_in:
        torch.testing.assert_close(small_in[k].grad, ref_in[k].grad, rtol=0, atol=1e-12)
    assert portable.name == "portable"


def test_portable_splits_rows_of_one_large_image(monkeypatch):
    """With a budget smaller than one image, the portable backend chunks output rows."""
    from mx_dcn.backends import portable as portable_mod

    blocks = []
    real_block = portable_mod._block

    def spy(p, r0, r1, *args):
        blocks.append((args[0].shape[0], r0, r1))
        return real_block(p, r0, r1, *args)

    monkeypatch.setattr(portable_mod, "_block", spy)
    case = Case("rows", 2, 64, 40, 40, 8)
    i = case.make_inputs(dtype=torch.float32, seed=3)
    with mx_dcn.use_backend("portable"):
        full = mx_dcn.modulated_deform_conv2d(*[i[k] for k in ("x", "offset", "mask", "weight", "bias")], padding=1)
        blocks.clear()
        with mx_dcn.workspace_budget(2 * 1024 * 1024):
            chunked = mx_dcn.modulated_deform_conv2d(*[i[k] for k in ("x", "offset", "mask", "weight", "bias")],
                                                     padding=1)
    assert len(blocks) > 2 and all(n == 1 for n, _, _ in blocks)
    covered = sorted((r0, r1) for _, r0, r1 in blocks)
    assert covered[0][0] == 0 and covered[-1][1] == 40
    torch.testing.assert_close(chunked, full, rtol=1e-6, atol=1e-5)


def test_workspace_budget_validation(monkeypatch):
    with pytest.raises(ValueError, match="nbytes: expected at least"):
        with mx_dcn.workspace_budget(10):
            pass
    monkeypatch.setenv("MX_DCN_WORKSPACE_MB", "lots")
    with pytest.raises(ValueError, match="MX_DCN_WORKSPACE_MB: expected a number of megabytes >= 1, got 'lots'"):
        mx_dcn.get_workspace_budget()
    monkeypatch.setenv("MX_DCN_WORKSPACE_MB", "64")
    assert mx_dcn.get_workspace_budget() == 64 * 1024 * 1024


def test_submodules_reachable_lazily():
    code = ("import sys, mx_dcn; assert 'mx_dcn.nn' not in sys.modules;"
            "print(mx_dcn.nn.ModulatedDeformConv2dPack.__name__, mx_dcn.compat.mindspore.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ModulatedDeformConv2dPack", "mx_dcn.compat.mindspore"]
