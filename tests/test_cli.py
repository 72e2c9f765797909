"""The `mx-dcn` command line, driven as a user drives it: `python -m mx_dcn ...` in a subprocess."""
import json
import os
import subprocess
import sys
import time

import pytest
import torch

import mx_dcn
from mx_dcn import registry
from mx_dcn.testing.cases import CASES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NPU_TARGET = ["--device", "npu", "--soc", "Ascend910B2"]
THREE_DCN = ["--model", "tests.models.three_dcn:build", "--input-shape", "1,3,64,64"]
# The ascendc backend's rule names (mx_dcn/backends/ascendc/backend.py), stable for scripts.
ASCENDC_SOC_RULE, ASCENDC_C_IN_RULE, ASCENDC_DG_RULE = "soc", "c_in_multiple_of_64", "deformable_groups"


def mx_dcn_cli(*args, cwd=ROOT, timeout=240):
    """Run `python -m mx_dcn ARGS` from the repository root; returns the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MX_DCN_BACKEND", None)
    env.pop("MX_DCN_STRICT", None)
    return subprocess.run([sys.executable, "-m", "mx_dcn", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_main(capsys, *argv, cwd=None):
    """The same command in this process (cheaper: no torch import per call): (status, stdout, stderr).
    An exception escaping main() fails the test, as a traceback would."""
    from mx_dcn import cli

    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def no_traceback(proc):
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


# --------------------------------------------------------------------------- help and usage errors


def test_python_dash_m_mx_dcn_bad_flag_is_a_usage_error():
    proc = mx_dcn_cli("check", "--stride", "1,2,3")
    assert proc.returncode == 2 and "usage: mx-dcn check" in proc.stderr and "--stride" in proc.stderr
    no_traceback(proc)


@pytest.mark.parametrize("command", [[], ["info"], ["check"], ["regress"], ["regress", "run"],
                                     ["regress", "record"], ["regress", "verify"], ["bench"]])
def test_every_command_has_help_with_examples(capsys, command):
    status, out, _ = run_main(capsys, *command, "--help")
    assert status == 0
    assert "examples:" in out and "mx-dcn" in out


@pytest.mark.parametrize("argv, complaint", [
    ([], "required: COMMAND"),
    (["frobnicate"], "invalid choice"),
    (["regress"], "required: ACTION"),
    (["check", "--stride", "1,2,3"], "--stride"),
    (["check", "--input-shape", "1,64,32", "--weight-shape", "64,64,3,3"], "one --input-shape N,C,H,W"),
    (["check", "--input-shape", "1,64,4,4", "--weight-shape", "64,64,7,7"], "invalid call: x: spatial size"),
    (["check", "--input-shape", "a,b,c,d"], "--input-shape"),
    (["check", "--dtype", "int8"], "--dtype"),
    (["check", "--device", "tpu"], "--device"),
    (["check", "--groups", "0"], "--groups"),
    (["check"], "give --model"),
    (["check", "--input-shape", "2,96,64,64", "--weight-shape", "64,95,3,3"], "weight: expected shape[1]"),
    (["check", "--model", "no_such_package.models:build", "--input-shape", "1,3,8,8"], "cannot import"),
    (["check", "--model", "tests.models.three_dcn", "--input-shape", "1,3,8,8"], "package.module:factory"),
    (["check", "--model", "tests.models.three_dcn:nope", "--input-shape", "1,3,8,8"], "no attribute"),
    (["regress", "run", "--cases", "k3x3,no_such_case"], "unknown case"),
    (["regress", "run", "--device", "npu"], "not available on this machine"),
    (["regress", "run", "--backend", "nope"], "--backend"),
    (["regress", "record"], "--out"),
    (["regress", "verify", "/nonexistent/golden"], "manifest.json"),
    (["bench", "--repeats", "0"], "--repeats"),
    (["bench", "--gemm", "--plot", "gemm.png"], "--gemm"),
])
def test_bad_flags_give_a_usage_error_not_a_traceback(capsys, argv, complaint):
    status, out, err = run_main(capsys, *argv)
    assert status == 2, (status, out, err)
    assert complaint in err, err


# --------------------------------------------------------------------------- info


def test_info_lists_every_backend_with_its_availability():
    proc = mx_dcn_cli("info")
    assert proc.returncode == 0, proc.stderr
    assert f"mx_dcn         {mx_dcn.__version__}" in proc.stdout
    assert f"torch          {torch.__version__}" in proc.stdout
    assert "torch_npu" in proc.stdout and "CANN" in proc.stdout
    lines = proc.stdout.splitlines()
    table = lines[lines.index(next(l for l in lines if l.startswith("Backends:"))) + 3:]
    table = table[:next(i for i, line in enumerate(table) if not line.startswith("  "))]
    rows = {line.split()[0]: line for line in table}
    for name in registry.backend_names():
        availability = mx_dcn.get_backend(name).available()
        assert name in rows, proc.stdout
        assert (" yes " if availability else " no ") in rows[name]
        if availability.missing:   # named pieces: the rules in the table, the reasons in the NPU section
            assert "missing " + ", ".join(v.rule for v in availability.missing) in rows[name]
            if name == "ascendc":
                assert all(v.message in proc.stdout for v in availability.missing)
        elif not availability:
            assert availability.reason in rows[name]


def test_info_json(capsys):
    status, out, _ = run_main(capsys, "info", "--json")
    assert status == 0
    data = json.loads(out)
    assert [b["name"] for b in data["backends"]] == list(registry.backend_names())
    for b in data["backends"]:
        availability = mx_dcn.get_backend(b["name"]).available()
        assert b["available"] == bool(availability)
        assert b["reason"] == ("" if availability else availability.reason)
    assert data["devices"][0]["type"] == "cpu"
    assert data["chains"]["npu"] == list(registry.chain_for("npu"))
    from mx_dcn import ops
    if ops.load_error() is None:
        mod = ops.load()
        assert data["settings"]["CPU kernel"] == f"{mod.kernel_isa()} sampling, {mod.kernel_gemm()} GEMM"


# --------------------------------------------------------------------------- check


def _ascendc_c_in_violation(call):
    """The ascendc violation(s) of a call, as (rule, message)."""
    return [(v["rule"], v["message"]) for v in call["backends"]["ascendc"]["violations"]]


def test_check_three_layer_model_for_atlas_a2(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    proc = mx_dcn_cli("check", *THREE_DCN, *NPU_TARGET, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    calls = data["calls"]
    assert [c["layer"] for c in calls] == ["backbone.0", "neck", "head.dcn"]
    assert [c["x"] for c in calls] == [[1, 64, 32, 32], [1, 64, 32, 32], [1, 96, 16, 16]]
    assert [c["weight"] for c in calls] == [[64, 64, 3, 3], [96, 64, 3, 3], [64, 96, 3, 3]]
    assert [c["stride"] for c in calls] == [[1, 1], [2, 2], [1, 1]]
    assert all(c["site"].startswith(os.path.join("tests", "models", "three_dcn.py:")) for c in calls)
    assert all(c["preferred"] == "ascendc" for c in calls)
    # c_in 64: the AscendC kernel; c_in 96: a fallback, the ascendc violation naming the channel count.
    assert [c["chosen"] for c in calls[:2]] == ["ascendc", "ascendc"]
    assert [_ascendc_c_in_violation(c) for c in calls[:2]] == [[], []]
    head = calls[2]
    assert head["fallback"] and head["chosen"] in ("cann", "portable")
    violations = _ascendc_c_in_violation(head)
    assert [rule for rule, _ in violations] == [ASCENDC_C_IN_RULE], violations
    assert "96" in violations[0][1] and "64" in violations[0][1]
    assert head["reasons"][0]["backend"] == "ascendc"
    assert data["summary"] == {"ascendc": 2, head["chosen"]: 1}
    assert data["fallbacks"] == 1 and data["target"]["soc"] == "Ascend910B2"

    # The table (same command in-process): one row per call with its qualified name; the violation in
    # words under the head row.
    status, out, err = run_main(capsys, "check", *THREE_DCN, *NPU_TARGET)
    assert status == 0, err
    lines = out.splitlines()
    rows = [l for l in lines if l[:1].isdigit()]
    assert [r.split()[1] for r in rows] == ["backbone.0", "neck", "head.dcn"]
    assert [r.split()[-1] for r in rows[:2]] == ["ascendc", "ascendc"]
    assert rows[2].endswith(f"{head['chosen']} (fallback)")
    after_head = lines[lines.index(rows[2]) + 1]
    assert after_head.strip().startswith(f"ascendc not used: [{ASCENDC_C_IN_RULE}]")
    assert violations[0][1] in after_head
    assert f"Summary: 3 calls: 2 -> ascendc, 1 -> {head['chosen']}; 1 leaves the preferred backend 'ascendc'." in lines


def test_fail_on_fallback_sets_the_exit_status(capsys):
    proc = mx_dcn_cli("check", *THREE_DCN, *NPU_TARGET, "--fail-on-fallback")
    assert proc.returncode == 1
    assert "1 call(s) would leave the preferred backend" in proc.stderr
    assert "head.dcn" in proc.stdout
    # A target every layer suits: no fallback, exit 0 even with the flag.
    status, out, err = run_main(capsys, "check", "--input-shape", "2,64,32,32", "--weight-shape", "64,64,3,3",
                                "--padding", "1", *NPU_TARGET, "--fail-on-fallback")
    assert status == 0, out + err
    (row,) = [line for line in out.splitlines() if line.startswith("1 ")]
    assert row.split()[1] == "(call)" and row.split()[-1] == "ascendc"


def test_check_one_call_names_each_violation(capsys):
    status, out, err = run_main(capsys, "check", "--input-shape", "2,96,64,64", "--weight-shape", "64,96,3,3",
                                "--padding", "1", "--deformable-groups", "2", *NPU_TARGET, "--json")
    assert status == 0, err
    (call,) = json.loads(out)["calls"]
    assert call["out"] == [2, 64, 64, 64] and call["deformable_groups"] == 2
    rules = [rule for rule, _ in _ascendc_c_in_violation(call)]
    assert rules == [ASCENDC_C_IN_RULE, ASCENDC_DG_RULE], rules
    assert call["fallback"]
    # A non-A2 chip is a violation too.
    other = json.loads(run_main(capsys, "check", "--input-shape", "2,64,64,64", "--weight-shape", "64,64,3,3",
                                "--device", "npu", "--soc", "Ascend310P3", "--json")[1])["calls"][0]
    assert [rule for rule, _ in _ascendc_c_in_violation(other)] == [ASCENDC_SOC_RULE]
    # The local view on this machine (no NPU): the AscendC kernel is unavailable here.
    local = run_main(capsys, "check", "--input-shape", "2,64,64,64", "--weight-shape", "64,64,3,3", *NPU_TARGET,
                     "--availability", "local")[1]
    assert "ascendc not used: [unavailable]" in local


def test_check_model_built_from_mx_dcn_nn_layers(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    status, out, err = run_main(capsys, "check", "--model", "tests.models.nn_dcn:build", "--input-shape",
                                "2,64,32,32", *NPU_TARGET, "--json")
    assert status == 0, err
    calls = json.loads(out)["calls"]
    assert [(c["layer"], c["module"]) for c in calls] == [
        ("lateral.dcn", "ModulatedDeformConv2dPack"), ("fuse", "ModulatedDeformConv2dPack"),
        ("offsets.v1", "DeformConv2dPack"), ("(model)", "Neck")]
    assert [c["chosen"] == "ascendc" for c in calls] == [True, True, False, False]
    assert [rule for rule, _ in _ascendc_c_in_violation(calls[2])] == [ASCENDC_DG_RULE]
    assert [rule for rule, _ in _ascendc_c_in_violation(calls[3])] == [ASCENDC_C_IN_RULE]
    assert [c["mask"] for c in calls] == [True, True, False, False]


def test_check_model_traced_on_cpu_for_this_machine(capsys, monkeypatch):
    """On CPU the model really runs; the cpu chain is judged as this machine has it."""
    monkeypatch.chdir(ROOT)
    status, out, err = run_main(capsys, "check", *THREE_DCN, "--device", "cpu", "--trace-device", "cpu", "--json")
    assert status == 0, err
    calls = json.loads(out)["calls"]
    assert [c["layer"] for c in calls] == ["backbone.0", "neck", "head.dcn"]
    expected = "cpu" if mx_dcn.get_backend("cpu").available() else "portable"
    assert {c["chosen"] for c in calls} == {expected}


def test_check_reports_a_model_that_fails_with_its_location(capsys, monkeypatch, tmp_path):
    (tmp_path / "broken_model.py").write_text(
        "import torch, mx_dcn\n"
        "class Broken(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        w = torch.zeros(4, 3, 3, 3, device=x.device)\n"
        "        off = torch.zeros(1, 18, 4, 4, device=x.device)\n"
        "        return mx_dcn.modulated_deform_conv2d(x, off, None, w)\n"
        "def build():\n    return Broken()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status, _, err = run_main(capsys, "check", "--model", "broken_model:build", "--input-shape", "1,3,8,8")
    assert status == 1
    assert "broken_model.py:6 in forward" in err and "offset: expected shape" in err


# --------------------------------------------------------------------------- regress

RECORD_CASES = "k3x3,dg2,v1_no_mask,empty_batch,c64_groups2_bias_maskzeros"


def test_regress_run_default_is_the_whole_suite(capsys):
    status, out, err = run_main(capsys, "regress", "run", "--json")
    assert status == 0, out[-3000:] + err
    results = json.loads(out)["results"]
    assert [r["case"] for r in results] == [c.name for c in CASES]
    assert all(r["status"] == "pass" for r in results)
    k3 = results[1]["tensors"]
    assert set(k3) == {"out", "grad_x", "grad_offset", "grad_mask", "grad_weight", "grad_bias"}
    assert all(0 < t["error"] <= t["allowed"] for t in k3.values())
    # The progress bar went to stderr, one line per case when stderr is not a terminal.
    assert f"{len(CASES)}/{len(CASES)} {CASES[-1].name} float32" in err


def test_regress_record_then_verify_round_trip_and_one_value_corruption(capsys, tmp_path):
    golden = tmp_path / "golden"
    rec = mx_dcn_cli("regress", "record", "--out", golden, "--cases", RECORD_CASES, "--dtype", "float32,float64")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    manifest = json.loads((golden / "manifest.json").read_text())
    assert manifest["device"] == "cpu" and manifest["dtypes"] == ["float32", "float64"]
    assert manifest["environment"]["torch"] == torch.__version__ and manifest["environment"]["date"]
    assert manifest["tolerances"]["float32"] == {"rtol": 2e-05, "atol": 2e-05}
    entries = {(e["case"], e["dtype"]): e for e in manifest["cases"]}
    assert len(entries) == 10
    assert all(e["oracle_check"] == "pass" and len(e["sha256"]) == 64 for e in entries.values())
    data = torch.load(golden / entries[("k3x3", "float32")]["file"], weights_only=True)
    assert data["inputs"]["x"].dtype == torch.float32 and data["outputs"]["grad_offset"].shape == (2, 18, 7, 8)
    assert data["outputs"]["grad_mask"] is not None
    assert torch.load(golden / entries[("v1_no_mask", "float32")]["file"], weights_only=True)[
        "outputs"]["grad_mask"] is None

    status, out, err = run_main(capsys, "regress", "verify", golden)   # in-process: saves a torch import
    assert status == 0, out + err
    assert "10 cases: 10 pass" in out

    # One value of one golden gradient altered: verify fails and names case, tensor, error and index.
    path = golden / entries[("k3x3", "float32")]["file"]
    data = torch.load(path, weights_only=True)
    data["outputs"]["grad_offset"][0, 3, 2, 1] += 0.031
    torch.save(data, path)
    bad = mx_dcn_cli("regress", "verify", golden)
    assert bad.returncode == 1
    assert "10 cases: 9 pass, 1 fail" in bad.stdout
    line = next(l for l in bad.stdout.splitlines() if "grad_offset max error" in l)
    assert line.strip().startswith("k3x3: grad_offset max error 3.1e-02 > allowed ")
    assert line.endswith("at index (0, 3, 2, 1)")
    assert "k3x3.float32.pt checksum differs from the manifest" in bad.stdout
    assert "FAILED" in bad.stderr and "k3x3: grad_offset" in bad.stderr
    no_traceback(bad)


def test_regress_verify_fails_when_a_recorded_output_differs_beyond_tolerance_only(capsys, tmp_path):
    """A change below the tolerance is not a value mismatch (only the checksum flags it)."""
    golden = tmp_path / "g"
    assert run_main(capsys, "regress", "record", "--out", golden, "--cases", "k1x1", "--no-oracle")[0] == 0
    path = golden / "k1x1.float32.pt"
    data = torch.load(path, weights_only=True)
    data["outputs"]["out"][1, 2, 3, 4] += 1e-7
    torch.save(data, path)
    status, out, _ = run_main(capsys, "regress", "verify", golden, "--json")
    assert status == 1
    (result,) = json.loads(out)["results"]
    assert result["tensors"]["out"]["ok"] and not result["tensors"]["k1x1.float32.pt"]["ok"]


def test_regress_forced_backend_runs_and_is_reported(capsys):
    status, out, err = run_main(capsys, "regress", "run", "--backend", "portable", "--cases", "k3x3,groups2",
                                "--dtype", "float64", "--no-progress")
    assert status == 0, out + err
    rows = [l.split() for l in out.splitlines() if l.startswith(("k3x3 ", "groups2 "))]
    assert [(r[0], r[1], r[2], r[-1]) for r in rows] == [("k3x3", "float64", "portable", "PASS"),
                                                         ("groups2", "float64", "portable", "PASS")]
    assert err == ""


# --------------------------------------------------------------------------- bench


def test_bench_quick_json_and_plot(tmp_path):
    plot = tmp_path / "bench.png"
    proc = mx_dcn_cli("bench", "--quick", "--repeats", "1", "--json", "--plot", plot)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) == 1
    r = results[0]
    for key in ("shape", "dense_fwd_ms", "mxdcn_fwd_ms", "fwd_ratio", "dense_fwdbwd_ms", "mxdcn_fwdbwd_ms",
                "fwdbwd_ratio", "peak_extra_mb"):
        assert key in r
    assert r["dense_fwd_ms"] > 0 and r["mxdcn_fwd_ms"] > 0
    assert abs(r["fwd_ratio"] - r["mxdcn_fwd_ms"] / r["dense_fwd_ms"]) < 0.02 * r["fwd_ratio"] + 1e-9
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000


def test_bench_gemm_json(capsys):
    status, out, err = run_main(capsys, "bench", "--gemm", "--quick", "--json")
    assert status == 0, err
    rows = json.loads(out)
    assert len(rows) == 1 and rows[0]["blas_gflops"] > 0 and rows[0]["default"] in ("own", "blas")


def test_bench_rejects_unknown_shapes(capsys):
    status, _, err = run_main(capsys, "bench", "--shapes", "no_such_shape")
    assert status == 2 and "unknown shape" in err


# --------------------------------------------------------------------------- the recorder and the checker


class _Shared(torch.nn.Module):
    """Calls the op twice per forward through two entry points (mx_driving's Function and the v1 API)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(64, 64, 3, 3))

    def forward(self, x):
        n, _, h, w = x.shape
        off = x.new_zeros(n, 18, h, w)
        y = mx_dcn.ModulatedDeformConv2dFunction.apply(x, off, x.new_ones(n, 9, h, w), self.weight, None, 1, 1)
        return mx_dcn.deform_conv2d(y, off, self.weight, 1, 1)


class _TwoUses(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.block = _Shared()

    def forward(self, x):
        return self.block(self.block(x))   # the same module applied twice


def test_recorder_names_repeated_calls_and_restores_the_registry():
    from mx_dcn import model_check

    resolve = registry.resolve
    result = model_check.check_model(_TwoUses(), [torch.randn(1, 64, 8, 8)], "npu", "Ascend910B2")
    assert registry.resolve is resolve
    assert [c.layer for c in result.calls] == ["block #1", "block #2", "block #3", "block #4"]
    assert [c.problem.has_mask for c in result.calls] == [True, False, True, False]
    assert all(c.chosen == "ascendc" and c.problem.soc == "Ascend910B2" for c in result.calls)
    assert result.summary() == {"ascendc": 4} and not result.fallbacks

    class Boom(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model_check.check_model(Boom(), [torch.randn(1, 3, 4, 4)])
    assert registry.resolve is resolve


def test_check_model_factory_that_raises_is_reported(capsys, monkeypatch, tmp_path):
    (tmp_path / "bad_factory.py").write_text("def build():\n    raise ImportError('needs mmdet')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status, _, err = run_main(capsys, "check", "--model", "bad_factory:build", "--input-shape", "1,3,8,8")
    assert status == 1 and "bad_factory.py:2 in build" in err and "needs mmdet" in err


def test_regress_run_names_case_tensor_and_index_of_a_wrong_backend(capsys, monkeypatch):
    """A backend that is wrong in one output element fails `regress run` with that element named."""
    portable = registry.get_backend("portable")
    honest = portable.run

    def off_by_one_element(problem, x, offset, mask, weight, bias):
        out = honest(problem, x, offset, mask, weight, bias)
        delta = torch.zeros_like(out)
        if out.numel():
            delta[0, 1, 2, 3] = 0.5
        return out + delta

    monkeypatch.setattr(portable, "run", off_by_one_element)
    status, out, err = run_main(capsys, "regress", "run", "--backend", "portable", "--cases", "k3x3,empty_batch",
                                "--no-progress")
    assert status == 1
    assert "2 cases: 1 pass, 1 fail" in out
    line = next(l for l in out.splitlines() if l.strip().startswith("k3x3: out"))
    assert line.strip().startswith("k3x3: out max error 5.0e-01 > allowed") and line.endswith("at index (0, 1, 2, 3)")
    # The gradients are untouched by a constant shift: only `out` is named.
    assert [l.split()[1] for l in out.splitlines() if l.strip().startswith("k3x3: ")] == ["out"]
    assert "FAILED" in err


@pytest.mark.parametrize("trace_device", ["meta", "cpu"])
def test_check_model_leaves_the_callers_model_unchanged(trace_device):
    from mx_dcn import model_check
    from tests.models.nn_dcn import build

    model = build().train()
    model.lateral.norm.eval()                         # a mixed mode must survive too
    hook = model.fuse.register_forward_hook(lambda *a: None)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = {name: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for name, m in model.named_modules()}
    modes = {name: m.training for name, m in model.named_modules()}
    inputs = {"x": torch.randn(1, 64, 16, 16)}        # keyword arguments, moved to the trace device
    result = model_check.check_model(model, inputs, "npu", "Ascend910B2", trace_device=trace_device)
    assert len(result.calls) == 4
    assert inputs["x"].device.type == "cpu"
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert {name: (dict(m._forward_hooks), dict(m._forward_pre_hooks)) for name, m in model.named_modules()} == hooks
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    hook.remove()
    with pytest.raises(TypeError, match="model"):
        model_check.check_model(lambda x: x, (torch.randn(1),))


@pytest.mark.parametrize("trace_device", ["meta", "cpu"])
def test_check_model_in_place_updates_stay_in_the_copy(trace_device):
    """A forward that updates a buffer and its input in place must not reach the caller's (on "cpu"
    the copy's tensors used to share the caller's storage)."""
    from mx_dcn import model_check
    from tests.models.nn_dcn import build

    class Mutating(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = build()
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x):
            self.calls += 1
            return self.inner(x.relu_())

    model, x = Mutating(), torch.randn(1, 64, 16, 16)
    x_before = x.clone()
    assert len(model_check.check_model(model, (x,), "npu", "Ascend910B2", trace_device=trace_device).calls) == 4
    assert model.calls.item() == 0 and torch.equal(x, x_before)


def test_record_calls_leaves_other_threads_calls_alone():
    """record_calls swaps the registry's resolve for the process; only the recording thread's calls
    are recorded and shape-only, another thread's calls compute (they got torch.empty before). A
    check inside a recording does not deadlock."""
    import threading

    import mx_dcn
    from mx_dcn import model_check
    from tests.models.nn_dcn import build

    x, w = torch.randn(1, 4, 6, 6), torch.randn(3, 4, 3, 3)
    offset, mask = torch.zeros(1, 18, 4, 4), torch.ones(1, 9, 4, 4)
    results = []
    worker = threading.Thread(target=lambda: results.append(mx_dcn.modulated_deform_conv2d(x, offset, mask, w)))
    with model_check.record_calls() as calls:
        worker.start()
        worker.join()
        mx_dcn.modulated_deform_conv2d(x.to("meta"), offset.to("meta"), mask.to("meta"), w.to("meta"))
        inner = model_check.check_model(build(), (torch.randn(1, 64, 16, 16),), "npu", "Ascend910B2")
    assert torch.allclose(results[0], torch.nn.functional.conv2d(x, w), atol=1e-5)
    assert len(inner.calls) == 4 and len(calls) == 1   # the inner check keeps its own; not the worker's


# --------------------------------------------------------------------------- reviewed behaviours (issue 21)


def test_bench_prints_its_table(capsys):
    """The plain-table path (the JSON path alone let a broken call through)."""
    status, out, err = run_main(capsys, "bench", "--quick", "--repeats", "1", "--no-torchvision")
    assert status == 0, err
    assert "dense fwd" in out and "ratio" in out and "median of the per-round ratios" in out


def test_bench_refuses_a_plot_it_could_not_write_before_measuring(capsys, monkeypatch, tmp_path):
    from mx_dcn import bench

    monkeypatch.setattr(bench, "measure", lambda *a, **k: pytest.fail("measured before checking --plot"))
    for path, complaint in ((tmp_path / "missing" / "x.png", "does not exist"), (tmp_path, "expected a .png"),
                            (tmp_path / "dir.png", "is a directory")):
        (tmp_path / "dir.png").mkdir(exist_ok=True)
        start = time.perf_counter()
        status, _, err = run_main(capsys, "bench", "--plot", path)
        assert time.perf_counter() - start < 1.0
        assert status == 2 and "--plot" in err and complaint in err, err


def test_bench_bad_plot_path_from_the_shell_is_a_usage_error():
    proc = mx_dcn_cli("bench", "--plot", "/missing/dir/x.png")
    assert proc.returncode == 2 and "directory '/missing/dir' does not exist" in proc.stderr, proc.stderr
    no_traceback(proc)
    assert proc.stdout == ""  # no table: nothing was measured


def test_bench_plot_labels_are_the_tables_figures(tmp_path):
    """A slow spell in one round: the median of the per-round ratios (the table's statistic) is 2.00,
    the ratio of the medians 5.1. The plot must say what the table says."""
    from mx_dcn import bench
    from mx_dcn.cli.bench import plot_bench

    row = dict(shape="n2_c64_64x64", dense_fwd_ms=1.0, mxdcn_fwd_ms=2.0, fwd_ratio=2.0, dense_fwdbwd_ms=2.0,
               mxdcn_fwdbwd_ms=10.2, fwdbwd_ratio=2.0, torchvision_fwd_ms=30.0, torchvision_fwdbwd_ms=80.0,
               speedup_fwd=12.5, speedup_fwdbwd=7.25, peak_extra_mb=1.0, dense_fwd_faults=0, mxdcn_fwd_faults=0)
    labels = plot_bench([row], str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 10_000
    table_row = bench.format_table([row]).splitlines()[2].split()
    assert table_row[3] == "2.00" and table_row[6] == "2.00" and table_row[9] == "12.5" and table_row[10] == "7.2"
    assert labels == ["1 ms", "2.00x dense", "mx 12.5x faster", "2 ms", "2.00x dense", "mx 7.2x faster"]
    assert not any("5.1" in label for label in labels)


def test_check_soc_needs_the_npu(capsys):
    status, _, err = run_main(capsys, "check", "--input-shape", "2,96,64,64", "--weight-shape", "64,96,3,3",
                              "--device", "cpu", "--soc", "Ascend910B2")
    assert status == 2 and "--soc Ascend910B2 names an NPU chip: it needs --device npu, got --device cpu" in err
    x = torch.empty(1, 64, 8, 8, device="meta")
    with pytest.raises(ValueError, match="soc: names an NPU chip .* needs device 'npu', got soc='Ascend910B2' "
                                         "with device 'cpu'"):
        mx_dcn.explain(x, torch.empty(1, 18, 8, 8, device="meta"), None, torch.empty(64, 64, 3, 3, device="meta"),
                       None, 1, 1, device="cpu", soc="Ascend910B2")


def test_regress_record_refuses_an_output_it_cannot_create(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    status, _, err = run_main(capsys, "regress", "record", "--out", blocker / "golden", "--cases", "k3x3",
                              "--no-progress")
    assert status == 2 and "--out: cannot create directory" in err, err


def test_the_selection_report_says_rejected_and_unavailable_apart():
    meta = dict(device="meta")
    report = str(mx_dcn.explain(torch.empty(2, 96, 8, 8, **meta), torch.empty(2, 36, 8, 8, **meta),
                                torch.empty(2, 18, 8, 8, **meta), torch.empty(64, 96, 3, 3, **meta), None,
                                1, 1, 1, 1, 2, device="npu", soc="Ascend910B2"))
    lines = report.splitlines()
    rejected = next(i for i, line in enumerate(lines) if "[    rejected] ascendc" in line)
    assert lines[rejected].strip() == "[    rejected] ascendc", report  # the verdict line says only that
    block = lines[rejected + 1:rejected + 4]
    assert block[0].strip().startswith("- c_in_multiple_of_64:") and block[1].strip().startswith("- deformable_groups:")
    if not mx_dcn.get_backend("ascendc").available():
        assert block[2].strip().startswith("and not on this machine (missing torch_npu"), report
        assert block[2].strip().endswith("assumed installed on the target"), report


def test_info_flags_bad_values_and_unknown_names_of_mx_dcn_variables(capsys, monkeypatch):
    for name in [k for k in os.environ if k.startswith("MX_DCN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MX_DCN_BACKEND", "foo")
    monkeypatch.setenv("MX_DCN_STICT", "1")
    status, out, err = run_main(capsys, "info")
    assert status == 1 and "1 MX_DCN_* variable(s) with a value mx_dcn rejects" in err
    assert "  MX_DCN_BACKEND=foo  <- MX_DCN_BACKEND: expected one of cpu, cuda, ascendc, cann, portable" in out
    assert "  MX_DCN_STICT=1  <- not a variable mx_dcn reads; it has no effect (did you mean MX_DCN_STRICT?)" in out
    monkeypatch.delenv("MX_DCN_BACKEND")
    status, out, _ = run_main(capsys, "info", "--json")
    assert status == 0  # an unknown name is flagged, but breaks nothing
    assert [e["name"] for e in json.loads(out)["environment"]] == ["MX_DCN_STICT"]
