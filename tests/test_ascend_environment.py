"""Availability of the ascendc backend on evidence: each missing piece of the NPU environment (torch_npu,
the CANN toolkit and its version, the device and its SoC, the op package, its CANN version, its
loading, the torch_npu glue) is named by its rule in `available()`, in `mx_dcn.explain(...,
device="npu")` and in `mx-dcn info`. Driven by fake CANN layouts and a stand-in torch_npu
(tests/npu_fakes.py); no NPU exists here."""
from __future__ import annotations

import json
import os
import sys

import pytest
import torch

import mx_dcn
from mx_dcn.backends.ascendc import AscendCBackend
from mx_dcn.backends.ascendc import device as ascendc_device
from mx_dcn.backends.ascendc import toolkit

from npu_fakes import fake_cann, fake_op_package, stand_in_torch_npu


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean NPU environment: no CANN variables, HOME in tmp, no torch_npu, the SoC not cached, and
    the registry's npu backends probed afresh."""
    for name in ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME", "ASCEND_CUSTOM_OPP_PATH", "ASCEND_OPP_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(ascendc_device, "_soc_cache", {})
    for name in ("ascendc", "cann"):   # probed afresh here, and their cached verdicts restored after
        monkeypatch.setattr(mx_dcn.get_backend(name), "_availability", None)
    monkeypatch.setattr(toolkit, "bundled_op_package", lambda: str(tmp_path / "not_bundled"))
    yield tmp_path
    sys.modules.pop("torch_npu", None)


def importable_torch_npu(tmp_path, monkeypatch):
    site = tmp_path / "site"
    stand_in_torch_npu(str(site), version="2.6.0.post1", importable=True)
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("torch_npu", None)


def rules():
    return [v.rule for v in AscendCBackend().available().missing]


def test_nothing_installed(env):
    a = AscendCBackend().available()
    assert not a and [v.rule for v in a.missing] == ["torch_npu", "cann_toolkit", "op_package", "npu_glue"]
    assert a.reason.startswith("torch_npu: torch_npu is not importable")
    assert "cann_toolkit: no CANN toolkit (no " in a.reason and "op_package: " in a.reason


@pytest.mark.parametrize("line", ["8.x", "9.x"])
def test_each_piece_appears_by_rule(env, monkeypatch, line):
    importable_torch_npu(env, monkeypatch)
    root = fake_cann(str(env), line, compiler="8.0.0" if line == "8.x" else "9.0.0")
    monkeypatch.setenv("ASCEND_HOME_PATH", root)
    assert rules() == ["npu_device", "op_package", "npu_glue"]          # torch_npu imports, no device

    monkeypatch.setattr(ascendc_device, "_soc_cache", {"soc": "Ascend910A"})
    assert rules() == ["soc", "op_package", "npu_glue"]
    monkeypatch.setattr(ascendc_device, "_soc_cache", {"soc": "Ascend910B2"})
    assert rules() == ["op_package", "npu_glue"]

    # An op package built by another CANN (its aclnn library here is an empty file: it cannot load).
    vendor = fake_op_package(str(env / "opp_old"), compiler="7.9.0")
    monkeypatch.setenv("ASCEND_CUSTOM_OPP_PATH", vendor)
    missing = AscendCBackend().available().missing
    assert [v.rule for v in missing] == ["op_package_cann", "op_package_load", "npu_glue"]
    assert "built with CANN compiler 7.9.0" in missing[0].message and vendor in missing[0].message

    vendor = fake_op_package(str(env / "opp_same"), compiler="8.0.0" if line == "8.x" else "9.0.0")
    monkeypatch.setenv("ASCEND_CUSTOM_OPP_PATH", vendor)
    assert rules() == ["op_package_load", "npu_glue"]


def test_old_cann_is_named(env, monkeypatch):
    monkeypatch.setenv("ASCEND_HOME_PATH", fake_cann(str(env), "8.x", version="7.0.0"))
    assert "cann_version" in rules()


def test_op_package_found_in_each_place(env, monkeypatch):
    """The bundled one first, then ASCEND_CUSTOM_OPP_PATH entries named mx_dcn, then ASCEND_OPP_PATH."""
    opp = env / "opp"
    vendor = fake_op_package(str(opp), compiler=None)
    monkeypatch.setenv("ASCEND_OPP_PATH", str(opp))
    assert toolkit.find_op_package() == vendor
    other = fake_op_package(str(env / "custom"), compiler=None)
    monkeypatch.setenv("ASCEND_CUSTOM_OPP_PATH", "/elsewhere/vendors/other:" + other)
    assert toolkit.find_op_package() == other
    monkeypatch.setattr(toolkit, "bundled_op_package", lambda: vendor)
    assert toolkit.find_op_package() == vendor


def test_use_op_package_prepends_once(monkeypatch):
    monkeypatch.setenv("ASCEND_CUSTOM_OPP_PATH", "/a/vendors/x")
    ascendc_device.use_op_package("/p/vendors/mx_dcn")
    ascendc_device.use_op_package("/p/vendors/mx_dcn")
    assert os.environ["ASCEND_CUSTOM_OPP_PATH"] == "/p/vendors/mx_dcn:/a/vendors/x"


def test_explain_for_npu_names_the_missing_pieces(env, monkeypatch):
    importable_torch_npu(env, monkeypatch)
    monkeypatch.setenv("ASCEND_HOME_PATH", fake_cann(str(env), "9.x", compiler="9.0.0"))
    meta = lambda *s: torch.empty(*s, device="meta")  # noqa: E731
    report = mx_dcn.explain(meta(1, 64, 8, 8), meta(1, 18, 8, 8), meta(1, 9, 8, 8), meta(64, 64, 3, 3), None,
                            padding=1, device="npu", soc="Ascend910B2")
    text = str(report)
    ascendc_line = next(line for line in text.splitlines() if "] ascendc" in line)
    missing = ascendc_line.split("(missing ", 1)[1].split(")", 1)[0].split(", ")
    for rule in ("npu_device", "op_package", "npu_glue"):   # by rule name; `mx-dcn info` gives the reasons
        assert rule in missing, text
        assert f"{rule}:" in report.backends["ascendc"].reason
    assert report.chosen == "ascendc"          # a declared target: pieces missing here are assumed there


def test_info_reports_the_npu_section(env, monkeypatch, capsys):
    importable_torch_npu(env, monkeypatch)
    root = fake_cann(str(env), "8.x", compiler="8.0.0")
    monkeypatch.setenv("ASCEND_HOME_PATH", root)
    vendor = fake_op_package(str(env / "opp"), compiler="8.0.0")
    monkeypatch.setenv("ASCEND_CUSTOM_OPP_PATH", vendor)
    from mx_dcn import cli

    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("NPU (Ascend):"):out.index("Backends:")].splitlines()
    assert f"  CANN           8.0.0 (8.x) at {os.path.realpath(root)}" in section
    assert any(line.startswith("  torch_npu      2.6.0.post1 at ") for line in section)
    assert f"  op package     {vendor} (built with CANN compiler 8.0.0)" in section
    assert "  ascendc        misses npu_device, op_package_load, npu_glue:" in section
    assert any(line.startswith("    op_package_load  its aclnn library does not load") for line in section)

    for name in ("ascendc", "cann"):
        monkeypatch.setattr(mx_dcn.get_backend(name), "_availability", None)
    assert cli.main(["info", "--json"]) == 0
    npu = json.loads(capsys.readouterr().out)["npu"]
    assert npu["CANN"].startswith("8.0.0 (8.x)") and [m["rule"] for m in npu["ascendc missing"]] == [
        "npu_device", "op_package_load", "npu_glue"]
