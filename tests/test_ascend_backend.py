"""The ascendc backend's verdicts: every violated constraint appears by name in mx_dcn.explain
(for a declared target, no NPU needed) and the call goes to the next backend of the npu chain;
`available()` says exactly what is missing."""
import sys
import types

import pytest
import torch

import mx_dcn
from mx_dcn.backends import ascendc
from mx_dcn.backends.ascendc import device as ascendc_device
from mx_dcn.backends.base import AVAILABLE

META = "meta"


def tensors(n=2, c_in=64, h=9, w=9, c_out=16, k=3, padding=1, stride=1, dg=1, dtype=torch.float32, mask=True):
    ho = (h + 2 * padding - (k - 1) - 1) // stride + 1
    wo = (w + 2 * padding - (k - 1) - 1) // stride + 1
    make = lambda *s: torch.empty(*s, device=META, dtype=dtype)  # noqa: E731
    return dict(x=make(n, c_in, h, w), offset=make(n, 2 * dg * k * k, ho, wo),
                mask=make(n, dg * k * k, ho, wo) if mask else None, weight=make(c_out, c_in, k, k),
                bias=make(c_out), stride=stride, padding=padding, deformable_groups=dg)


def explain(t, soc="Ascend910B2"):
    return mx_dcn.explain(t.pop("x"), t.pop("offset"), t.pop("mask"), t.pop("weight"), t.pop("bias"), **t,
                          device="npu", soc=soc)


@pytest.fixture
def npu_backends_available(monkeypatch):
    """Pretend ascendc and cann are available, so the choice shows where each verdict leads."""
    for name in ("ascendc", "cann"):
        monkeypatch.setattr(mx_dcn.get_backend(name), "_availability", AVAILABLE)


def rules(report, name="ascendc"):
    return [v.rule for v in report.backends[name].violations]


def test_valid_call_for_atlas_a2_has_no_violation(npu_backends_available):
    report = explain(tensors())
    assert rules(report) == [] and report.chosen == "ascendc"


@pytest.mark.parametrize("make,soc,rule", [
    (lambda: tensors(), "Ascend910A", "soc"),
    (lambda: tensors(), "Ascend310P3", "soc"),
    (lambda: tensors(c_in=96), "Ascend910B2", "c_in_multiple_of_64"),
    (lambda: tensors(dg=2), "Ascend910B2", "deformable_groups"),
    (lambda: tensors(dtype=torch.float64), "Ascend910B3", "dtype"),
    (lambda: tensors(n=1, h=101, w=101, k=101, padding=0, c_out=4), "Ascend910B4", "tiling"),
])
def test_each_violation_is_named_and_falls_back(npu_backends_available, make, soc, rule):
    report = explain(make(), soc=soc)
    assert rules(report) == [rule], str(report)
    assert report.chosen != "ascendc"
    # The next backend of the npu chain that accepts the call gets it.
    expected = "cann" if not report.backends["cann"].violations else "portable"
    assert report.chosen == expected, str(report)
    assert rule in str(report)


def test_declared_target_without_npu_here():
    """On this machine (no torch_npu) a declared target gets the same verdicts; the npu backends are
    assumed installed there, so the call goes to cann."""
    report = explain(tensors(c_in=96))
    assert rules(report) == ["c_in_multiple_of_64"]
    verdict = report.backends["ascendc"]
    assert not verdict.available and verdict.assumed and report.chosen == "cann"
    assert explain(tensors()).chosen == "ascendc"


def test_unknown_soc_is_a_violation():
    report = explain(tensors(), soc=None)
    assert rules(report) == ["soc"] and "unknown" in report.backends["ascendc"].violations[0].message


def test_half_types_are_accepted():
    for dtype in (torch.float16, torch.bfloat16):
        assert rules(explain(tensors(dtype=dtype))) == []


@pytest.mark.parametrize("make,phrase", [
    (lambda: tensors(n=1, h=101, w=101, k=101, padding=0, c_out=4), "more than 255 kernel taps"),
    (lambda: tensors(n=1, c_in=1984, h=16, w=16, k=15, padding=0, c_out=4), "Unified Buffer"),
    (lambda: tensors(c_in=2048, c_out=4), "more than 2040 channels"),
    (lambda: tensors(c_in=128, w=5000, c_out=4), "the gap of a corner copy"),
])
def test_tiling_message_names_the_limit(make, phrase):
    report = explain(make())
    assert rules(report) == ["tiling"] and phrase in report.backends["ascendc"].violations[0].message


def test_available_says_torch_npu_is_missing_here():
    reason = ascendc.AscendCBackend().available().reason
    assert "torch_npu is not importable" in reason


def test_available_lists_each_missing_piece(monkeypatch):
    """With torch_npu importable but nothing else present: device, toolkit, package and glue are each
    named by rule (tests/test_ascend_environment.py goes through every piece)."""
    monkeypatch.setitem(sys.modules, "torch_npu", types.ModuleType("torch_npu"))
    monkeypatch.setattr(ascendc_device, "_soc_cache", {})
    for name in ("ASCEND_CUSTOM_OPP_PATH", "ASCEND_OPP_PATH", "ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME"):
        monkeypatch.delenv(name, raising=False)
    a = ascendc.AscendCBackend().available()
    assert [v.rule for v in a.missing][:1] == ["npu_device"] and "no NPU device is visible" in a.reason
    assert {"op_package", "npu_glue"} <= {v.rule for v in a.missing}
    assert "custom-op package is not installed" in a.reason and "mx_dcn._npu is not built" in a.reason


def test_tiling_is_judged_in_the_col2im_mode_the_backward_will_run(npu_backends_available):
    """9x9 taps over 256 channels on 32x32: col2im tiles in its atomic mode, but its deterministic mode
    (one row of the grad x band in the UB too) does not. Under deterministic algorithms the call must
    go to cann before any launch, not fail in the backward."""
    call = dict(n=1, c_in=256, h=32, w=32, c_out=8, k=9, padding=4)
    assert explain(tensors(**call)).chosen == "ascendc"
    saved = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        report = explain(tensors(**call))
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    assert report.chosen == "cann" and rules(report) == ["tiling"], str(report)
    assert "col2im kernel in its deterministic mode" in report.backends["ascendc"].violations[0].message


def test_deterministic_mode_turned_on_after_the_forward_is_refused_before_any_launch(monkeypatch):
    """The forward chose ascendc with col2im judged in the atomic mode; if deterministic algorithms
    are turned on before the backward and the deterministic mode cannot tile, the backward raises
    (naming the cause) before launching anything."""
    from mx_dcn.backends.ascendc.algorithm import run_with_kernels
    from mx_dcn.backends.ascendc.kernels import SamplingKernels
    from mx_dcn.problem import describe

    class Recording(SamplingKernels):
        launches = []

        def im2col(self, shape, x, offset, mask, columns):
            self.launches.append("im2col")
            columns.zero_()

        def col2im(self, shape, *tensors):
            self.launches.append("col2im")

    t = {k: (torch.randn(v.shape, dtype=v.dtype, requires_grad=True) if isinstance(v, torch.Tensor) else v)
         for k, v in tensors(n=1, c_in=256, h=32, w=32, c_out=8, k=9, padding=4).items()}
    p = describe(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], padding=4)
    kernels = Recording()
    out = run_with_kernels(p, t["x"], t["offset"], t["mask"], t["weight"], t["bias"], kernels)
    assert kernels.launches == ["im2col"]
    monkeypatch.setenv("MX_DCN_DETERMINISTIC", "1")
    with pytest.raises(RuntimeError, match="were off when this call's forward chose the backend.*deterministic mode"):
        out.sum().backward()
    assert kernels.launches == ["im2col"]
