"""`regress record --model`: a user's own model's deformable convolution calls, recorded at their shapes,
parameters and dtypes, verified unchanged here and caught when a result changes."""
import json
import os

import torch

from mx_dcn import model_check, regress
from tests.models import three_dcn


def recorded_problems(model, x):
    check = model_check.check_model(model, (x,), device="cpu", trace_device="meta")
    return [(c.layer, c.problem) for c in check.calls]


def test_model_cases_keep_each_calls_shapes_parameters_and_dtype():
    calls = regress.model_cases(recorded_problems(three_dcn.build(), torch.randn(1, 3, 32, 32)))
    assert [c.layers for c in calls] == [("backbone.0",), ("neck",), ("head.dcn",)]
    backbone, neck, head = (c.case for c in calls)
    assert (backbone.n, backbone.c_in, backbone.h, backbone.w, backbone.c_out) == (1, 64, 16, 16, 64)
    assert (neck.c_in, neck.c_out, neck.stride, neck.out_hw) == (64, 96, (2, 2), (8, 8))
    assert (head.c_in, head.h, head.w, head.c_out) == (96, 8, 8, 64)
    assert all(c.case.mask and c.case.bias and c.dtype == torch.float32 for c in calls)
    assert [c.case.name for c in calls] == ["backbone.0", "neck", "head.dcn"]


def test_layers_making_the_same_call_share_one_case_and_names_stay_unique():
    model = three_dcn.build()
    problems = recorded_problems(model, torch.randn(2, 3, 16, 16))
    twice = problems + [("backbone/0 copy", problems[0][1]), ("neck", problems[2][1].__class__(
        **{**problems[2][1].__dict__, "batch": 5}))]
    calls = regress.model_cases(twice)
    assert calls[0].layers == ("backbone.0", "backbone/0 copy")
    assert [c.case.name for c in calls] == ["backbone.0", "neck", "head.dcn", "neck_"]


def test_record_a_model_then_verify_it_and_catch_a_change(tmp_path):
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    calls = regress.model_cases(recorded_problems(three_dcn.build().double(), x))
    assert {c.dtype for c in calls} == {torch.float64}
    results, manifest = regress.record_suite(str(tmp_path), [], [], model_calls=calls, source="model three_dcn")
    assert [r.status for r in results] == ["pass"] * 3, [str(r) for r in results]
    assert manifest["source"] == "model three_dcn" and manifest["dtypes"] == ["float64"]
    assert [e["layers"] for e in manifest["cases"]] == [["backbone.0"], ["neck"], ["head.dcn"]]
    verified, _ = regress.verify_dir(str(tmp_path))
    assert [r.status for r in verified] == ["pass"] * 3
    # A recorded output that no longer matches what this machine computes fails, naming the tensor.
    entry = manifest["cases"][1]
    path = os.path.join(tmp_path, entry["file"])
    data = torch.load(path, weights_only=True)
    data["outputs"]["grad_offset"][0, 0, 0, 0] += 1.0
    torch.save(data, path)
    entry["sha256"] = regress.sha256(path)
    with open(os.path.join(tmp_path, regress.MANIFEST), "w") as f:
        json.dump(manifest, f)
    verified, _ = regress.verify_dir(str(tmp_path))
    assert [r.status for r in verified] == ["pass", "fail", "pass"]
    assert [c.tensor for c in verified[1].checks if not c.ok] == ["grad_offset"]


def test_an_explicit_dtype_list_records_every_call_in_each(tmp_path):
    calls = regress.model_cases(recorded_problems(three_dcn.build(), torch.randn(1, 3, 8, 8)))[:1]
    results, manifest = regress.record_suite(str(tmp_path), [], [torch.float32, torch.float64],
                                             model_calls=calls, check_oracle=False)
    assert [(e["case"], e["dtype"]) for e in manifest["cases"]] == [("backbone.0", "float32"),
                                                                    ("backbone.0", "float64")]


def test_cli_records_a_models_calls_and_verifies_them(tmp_path, capsys):
    from mx_dcn import cli

    out = str(tmp_path / "golden")
    status = cli.main(["regress", "record", "--out", out, "--model", "tests.models.three_dcn:build",
                       "--input-shape", "1,3,16,16", "--dtype", "float64", "--no-progress"])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "tests.models.three_dcn:build: 3 calls, 3 distinct" in text
    with open(os.path.join(out, regress.MANIFEST)) as f:
        manifest = json.load(f)
    assert manifest["source"].startswith("model tests.models.three_dcn:build, input (1,3,16,16)")
    assert [(e["case"], e["dtype"], e["oracle_check"]) for e in manifest["cases"]] == [
        ("backbone.0", "float64", "pass"), ("neck", "float64", "pass"), ("head.dcn", "float64", "pass")]
    assert cli.main(["regress", "verify", out, "--no-progress"]) == 0


def test_cli_model_recording_refuses_suite_cases_and_a_model_without_calls(tmp_path, capsys):
    from mx_dcn import cli

    assert cli.main(["regress", "record", "--out", str(tmp_path), "--model", "tests.models.three_dcn:build",
                     "--input-shape", "1,3,16,16", "--cases", "k3x3"]) == 2
    assert "--cases selects cases of the shared suite" in capsys.readouterr().err
    assert cli.main(["regress", "record", "--out", str(tmp_path), "--model", "torch.nn:Identity",
                     "--input-shape", "1,3,8,8"]) == 2
    assert "made no deformable convolution call" in capsys.readouterr().err
