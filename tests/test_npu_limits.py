"""The cann backend's documented limits (CANN's aclnnDeformableConv2d docs) and the registry's
`deterministic` rule, judged for a declared Atlas A2 target on meta tensors (no NPU needed): each limit
by rule name in `explain`, the fallback to portable with its warning, the strict-mode error; under
deterministic algorithms the ascendc backend keeps its calls (its col2im has a deterministic mode),
while a backend declaring a non-deterministic backward is skipped for the next one."""
import re
import warnings

import pytest
import torch

import mx_dcn
from mx_dcn import registry
from mx_dcn.backends.base import AVAILABLE
from mx_dcn.problem import describe

SOC = "Ascend910B2"


def meta_call(n=1, c_in=64, h=9, w=9, c_out=8, kh=3, kw=3, padding=1, dg=1, dtype=torch.float32):
    ho, wo = h + 2 * padding - kh + 1, w + 2 * padding - kw + 1
    make = lambda *s: torch.empty(*s, device="meta", dtype=dtype)  # noqa: E731
    return dict(x=make(n, c_in, h, w), offset=make(n, 2 * dg * kh * kw, ho, wo), mask=make(n, dg * kh * kw, ho, wo),
                weight=make(c_out, c_in, kh, kw), bias=make(c_out), padding=padding, deformable_groups=dg)


def explain(call):
    c = dict(call)
    return mx_dcn.explain(c.pop("x"), c.pop("offset"), c.pop("mask"), c.pop("weight"), c.pop("bias"), **c,
                          device="npu", soc=SOC)


def problem(call):
    c = dict(call)
    return describe(c.pop("x"), c.pop("offset"), c.pop("mask"), c.pop("weight"), c.pop("bias"), **c,
                    device="npu", soc=SOC)


def documented_rules(name):
    return {line.split(":", 1)[0] for line in mx_dcn.get_backend(name).limits}


@pytest.fixture
def npu_backends_available(monkeypatch):
    """Pretend ascendc and cann are installed, so each verdict shows where the call goes."""
    for name in ("ascendc", "cann"):
        monkeypatch.setattr(mx_dcn.get_backend(name), "_availability", AVAILABLE)
    registry.reset_warnings()
    yield
    registry.reset_warnings()


# Each call also has deformable_groups=2 (C_in allowing), which the ascendc backend rejects, so what
# follows cann in the chain is portable.
LIMIT_CASES = {
    "empty": dict(n=0, dg=2),
    "kernel_taps": dict(c_in=2, c_out=2, kh=46, kw=46, h=46, w=46, padding=0, dg=2),      # 2116 taps > 2048
    "kernel_volume": dict(c_in=8192, c_out=8, dg=2),                                       # 9 * 8192 > 65535
    "plane_size": dict(c_in=2, c_out=2, h=46341, w=46341, dg=2),                           # > 2^31 - 1 pixels
    "square_kernel": dict(kh=3, kw=1, dg=2),
    "dtype": dict(dtype=torch.float64, dg=2),
}


@pytest.mark.parametrize("rule", sorted(LIMIT_CASES))
def test_each_cann_limit_is_named_and_falls_back_to_portable(npu_backends_available, rule):
    report = explain(meta_call(**LIMIT_CASES[rule]))
    assert [v.rule for v in report.backends["cann"].violations] == [rule], str(report)
    assert "deformable_groups" in [v.rule for v in report.backends["ascendc"].violations]
    assert report.chosen == "portable" and report.is_fallback


@pytest.mark.parametrize("rule", sorted(LIMIT_CASES))
def test_each_cann_limit_warns_once_naming_it_or_raises_in_strict_mode(npu_backends_available, rule):
    p = problem(meta_call(**LIMIT_CASES[rule]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert registry.resolve(p).name == "portable"
    assert any(f"cann [{rule}]" in str(w.message) for w in caught), [str(w.message) for w in caught]
    with mx_dcn.strict(), pytest.raises(mx_dcn.BackendFallbackError, match=re.escape(f"cann [{rule}]")):
        registry.resolve(p)


@pytest.mark.parametrize("rule,call", [
    ("kernel_taps", dict(c_in=2, c_out=2, kh=45, kw=45, h=45, w=45, padding=0, dg=2)),   # 2025 taps
    ("kernel_volume", dict(c_in=7280, c_out=8, dg=2)),                                  # 9 * 7280 = 65520
    ("plane_size", dict(c_in=2, c_out=2, h=46338, w=46338, dg=2)),   # (H+2)*(W+2) = 2,147,395,600
])
def test_calls_just_inside_a_limit_go_to_cann(npu_backends_available, rule, call):
    report = explain(meta_call(**call))
    assert report.backends["cann"].violations == () and report.chosen == "cann", str(report)


def test_every_rule_a_backend_names_is_documented_in_its_limits(npu_backends_available):
    calls = [meta_call(**c) for c in LIMIT_CASES.values()] + [meta_call(c_in=96), meta_call(dg=2)]
    with _deterministic(True):
        reports = [explain(c) for c in calls] + [explain(meta_call())]
    for report in reports:
        for name in ("ascendc", "cann"):
            for v in report.backends[name].violations:
                assert v.rule in documented_rules(name), f"{name} names rule {v.rule!r} not in its limits"


class _deterministic:
    """torch.use_deterministic_algorithms(enabled, warn_only=...) for the block, restored after."""

    def __init__(self, enabled, warn_only=False):
        self.enabled, self.warn_only = enabled, warn_only

    def __enter__(self):
        self.saved = (torch.are_deterministic_algorithms_enabled(),
                      torch.is_deterministic_algorithms_warn_only_enabled())
        torch.use_deterministic_algorithms(self.enabled, warn_only=self.warn_only)

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(self.saved[0], warn_only=self.saved[1])


def test_deterministic_mode_keeps_ascendc(npu_backends_available, monkeypatch):
    """ascendc declares a deterministic backward (its col2im's deterministic mode, tests/test_ascend_sim.py),
    so it keeps its calls under torch.use_deterministic_algorithms(True) -- with or without warn_only --
    and under MX_DCN_DETERMINISTIC=1."""
    call = meta_call()
    for enabled, warn_only in ((True, False), (True, True)):
        with _deterministic(enabled, warn_only=warn_only):
            report = explain(call)
        assert report.backends["ascendc"].violations == () and report.chosen == "ascendc", str(report)
    monkeypatch.setenv("MX_DCN_DETERMINISTIC", "1")
    assert explain(call).chosen == "ascendc"


def test_a_non_deterministic_backend_is_skipped_with_the_reason(npu_backends_available, monkeypatch):
    """The registry's rule still bites for a backend that declares a non-deterministic backward (here
    ascendc as it was before its deterministic mode): its calls go to cann, with the reason in the
    warning; with the flag restored, to ascendc again."""
    monkeypatch.setattr(mx_dcn.get_backend("ascendc"), "deterministic", False)
    p = problem(meta_call())
    with _deterministic(True), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = explain(meta_call())
        assert registry.resolve(p).name == "cann"
    assert [v.rule for v in report.backends["ascendc"].violations] == ["deterministic"]
    assert any("ascendc [deterministic]" in str(w.message) for w in caught)
    with _deterministic(True, warn_only=True):   # like torch, which keeps its non-deterministic ops
        assert explain(meta_call()).chosen == "ascendc"
    monkeypatch.setenv("MX_DCN_DETERMINISTIC", "1")
    assert explain(meta_call()).chosen == "cann"
    monkeypatch.delenv("MX_DCN_DETERMINISTIC")
    assert explain(meta_call()).chosen == "ascendc"


def test_deterministic_backends_are_not_rejected():
    """Only a backend that declares a non-deterministic backward gets the rule: none of the built-in ones."""
    with _deterministic(True):
        for name in ("cpu", "cuda", "cann", "portable", "ascendc"):
            backend = mx_dcn.get_backend(name)
            assert backend.deterministic and backend.determinism
            assert all(v.rule != "deterministic" for v in registry.judge(backend, problem(meta_call())))


def test_info_lists_npu_limits_and_determinism(capsys):
    from mx_dcn import cli

    assert cli.main(["info", "--json"]) == 0
    import json
    backends = {b["name"]: b for b in json.loads(capsys.readouterr().out)["backends"]}
    assert backends["ascendc"]["deterministic"] is True and backends["cann"]["deterministic"] is True
    assert {line.split(":")[0] for line in backends["cann"]["limits"]} >= set(LIMIT_CASES)
    assert cli.main(["info"]) == 0
    text = capsys.readouterr().out
    assert "kernel_volume: K_H*K_W*C_in/groups <= 65535" in text and "ascendc   yes" in text
