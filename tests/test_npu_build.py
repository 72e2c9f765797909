"""The NPU part of the install (build_npu.py, called by setup.py): what it decides to build and what it
reports, from a stand-in torch_npu and fake CANN layouts (tests/npu_fakes.py), for CANN 8.x and 9.x.

What these tests prove: the decision and the report, made by the real setup.py in a virtual
environment as `pip install` makes them, and that a machine without the real toolchain gets a report,
not a crash. What they do not: that the glue compiles against real torch_npu and CANN headers, or that
kernels_ascend/build.sh builds an op package (no CANN toolkit or torch_npu exists here)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import venv

import pytest

from npu_fakes import fake_cann, stand_in_torch_npu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_build_npu():
    spec = importlib.util.spec_from_file_location("build_npu_under_test", os.path.join(ROOT, "build_npu.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


build_npu = load_build_npu()


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path for a stand-in torch_npu; no CANN variables from the test's environment."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    for name in ("ASCEND_HOME_PATH", "ASCEND_TOOLKIT_HOME", "MX_DCN_WITH_NPU", "MX_DCN_NPU_OPP"):
        monkeypatch.delenv(name, raising=False)
    return str(path)


def env_for(root, **extra):
    env = {"ASCEND_HOME_PATH": root, "PATH": os.environ.get("PATH", "")}
    env.update(extra)
    return env


# --------------------------------------------------------------------------- the decision, in process


@pytest.mark.parametrize("line, layout, how", [("8.x", "msopgen", "msOpGen"), ("9.x", "asc", "ASC CMake modules")])
def test_complete_layout_builds_glue_and_op_package(tmp_path, site, line, layout, how):
    root = fake_cann(str(tmp_path), line, complete=True)
    stand_in_torch_npu(site, complete=True)
    plan = build_npu.plan(env_for(root))
    assert plan.cann.line == line and plan.glue.build and plan.op_package.build
    assert plan.layout == layout and how in plan.op_package.why
    text = build_npu.report(plan)
    assert f"({line})" in text and "glue mx_dcn._npu: build" in text and "2.6.0.post1" in text


@pytest.mark.parametrize("line", ["8.x", "9.x"])
def test_bare_layout_is_reported_not_built(tmp_path, site, line):
    """Structure and version file only: the toolkit and its line are found, the glue is skipped naming
    the missing headers, the op package is skipped because the glue is."""
    root = fake_cann(str(tmp_path), line)
    stand_in_torch_npu(site)
    plan = build_npu.plan(env_for(root))
    assert plan.cann.version == build_npu.toolkit.read_version(root)[0] and plan.cann.line == line
    assert not plan.glue.build and "acl/acl.h" in plan.glue.why and "OpCommand.h" in plan.glue.why
    assert not plan.op_package.build and plan.layout is None


def test_no_torch_npu_skips_the_npu_path(tmp_path, site):
    plan = build_npu.plan(env_for(fake_cann(str(tmp_path), "9.x", complete=True)))
    assert not plan.glue.build and plan.glue.why == "torch_npu is not installed"
    assert plan.torch_npu is None and "torch_npu: not installed" in build_npu.report(plan)


def test_old_cann_is_refused(tmp_path, site):
    stand_in_torch_npu(site, complete=True)
    plan = build_npu.plan(env_for(fake_cann(str(tmp_path), "8.x", complete=True, version="7.0.0")))
    assert not plan.glue.build and "older than 8.0" in plan.glue.why


def test_no_toolkit_says_where_it_looked(tmp_path, site):
    stand_in_torch_npu(site, complete=True)
    plan = build_npu.plan(env_for(str(tmp_path / "nowhere")))
    assert plan.cann is None and not plan.glue.build and str(tmp_path / "nowhere") in plan.glue.why


def test_toolkit_without_project_tools_builds_the_glue_only(tmp_path, site):
    root = fake_cann(str(tmp_path), "8.x")
    for rel in ("include/acl/acl.h", "include/aclnn/acl_meta.h", "lib64/libascendcl.so", "lib64/libnnopbase.so"):
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        open(os.path.join(root, rel), "w").close()
    stand_in_torch_npu(site, complete=True)
    plan = build_npu.plan(env_for(root))
    assert plan.glue.build and not plan.op_package.build and "neither the ASC CMake modules" in plan.op_package.why


def test_missing_cmake_skips_the_op_package(tmp_path, site):
    root = fake_cann(str(tmp_path), "9.x", complete=True)
    stand_in_torch_npu(site, complete=True)
    plan = build_npu.plan(env_for(root, PATH=str(tmp_path)))
    assert plan.glue.build and not plan.op_package.build and "cmake 3.19 or later" in plan.op_package.why


def test_switches(tmp_path, site):
    root = fake_cann(str(tmp_path), "9.x")
    stand_in_torch_npu(site)
    assert build_npu.plan(env_for(root, MX_DCN_WITH_NPU="0")).glue.why == "MX_DCN_WITH_NPU=0"
    with pytest.raises(RuntimeError, match="MX_DCN_WITH_NPU=1 but the NPU glue cannot be built: .*acl.h"):
        build_npu.plan(env_for(root, MX_DCN_WITH_NPU="1"))
    with pytest.raises(ValueError, match="MX_DCN_NPU_OPP: expected auto, 0 or 1, got 'maybe'"):
        build_npu.plan(env_for(root, MX_DCN_NPU_OPP="maybe"))
    complete = fake_cann(str(tmp_path / "c"), "9.x", complete=True)
    stand_in_torch_npu(site, complete=True)
    plan = build_npu.plan(env_for(complete, MX_DCN_NPU_OPP="0"))
    assert plan.glue.build and not plan.op_package.build and "MX_DCN_NPU_OPP=0" in plan.op_package.why
    with pytest.raises(RuntimeError, match="MX_DCN_NPU_OPP=1 but the op package cannot be built: .*cmake"):
        build_npu.plan(env_for(complete, MX_DCN_NPU_OPP="1", PATH=str(tmp_path)))


@pytest.mark.parametrize("text, version, major", [
    ("version=8.0.RC3\n", "8.0.RC3", 8), ("Version=8.1.RC1\n", "8.1.RC1", 8), ("version = 9.0.0\n", "9.0.0", 9),
    ('version="8.5.0"\n', "8.5.0", 8)])
def test_version_file_forms(tmp_path, text, version, major):
    root = tmp_path / "cann"
    (root / "aarch64-linux").mkdir(parents=True)
    (root / "aarch64-linux" / "ascend_toolkit_install.info").write_text("package_name=x\n" + text)
    cann, where = build_npu.toolkit.find_cann({"ASCEND_HOME_PATH": str(root), "HOME": str(tmp_path)})
    assert (cann.version, cann.major) == (version, major) and where == f"found at {root}"


# --------------------------------------------------------------------------- setup.py in a virtual environment


@pytest.fixture(scope="module")
def npu_venv(tmp_path_factory):
    """A venv on the system's torch (--system-site-packages) with a stand-in torch_npu installed into it
    (with empty files where torch_npu has the headers and library the glue needs)."""
    base = tmp_path_factory.mktemp("npu_venv")
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(str(base / "venv"))
    python = str(base / "venv" / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert purelib.startswith(str(base))
    stand_in_torch_npu(purelib, version="2.6.0.post1", complete=True)
    return python, base


def setup_py(python, root, **extra):
    """`python setup.py --version` from the repository, as pip's build runs setup.py: it defines the
    extensions (CPU, and NPU when decided) and prints the NPU decision, but compiles nothing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASCEND_", "MX_DCN_"))}
    env.update(ASCEND_HOME_PATH=root, **extra)
    proc = subprocess.run([python, "setup.py", "--version"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert "Traceback" not in proc.stdout, proc.stdout
    return proc


@pytest.mark.parametrize("line, how", [("8.x", "a project generated by msOpGen of CANN 8.0.0"),
                                       ("9.x", "the ASC CMake modules of CANN 9.0.0")])
def test_setup_py_in_a_venv_decides_the_npu_build(npu_venv, line, how):
    python, base = npu_venv
    root = fake_cann(str(base / f"complete{line}"), line, complete=True)
    proc = setup_py(python, root)
    assert proc.returncode == 0, proc.stderr
    version = build_npu.toolkit.read_version(root)[0]
    assert f"mx_dcn NPU build:\n  CANN {version} ({line}) at {os.path.realpath(root)}" in proc.stdout
    assert "torch_npu: 2.6.0.post1 at " + str(base) in proc.stdout
    assert "glue mx_dcn._npu: build -- torch_npu and the CANN headers and libraries are there" in proc.stdout
    assert f"op package mx_dcn/_opp/vendors/mx_dcn: build -- with {how}" in proc.stdout
    assert proc.stdout.strip().endswith("0.1.0")


@pytest.mark.parametrize("line", ["8.x", "9.x"])
def test_setup_py_in_a_venv_reports_what_a_bare_layout_lacks(npu_venv, line):
    """The structure and version file only: no toolchain. setup.py reports and goes on (exit 0)."""
    python, base = npu_venv
    root = fake_cann(str(base / f"bare{line}"), line)
    proc = setup_py(python, root)
    assert proc.returncode == 0, proc.stderr
    assert f"CANN {build_npu.toolkit.read_version(root)[0]} ({line})" in proc.stdout
    assert ("glue mx_dcn._npu: skipped -- the toolkit or torch_npu is incomplete, missing "
            + os.path.join(os.path.realpath(root), "include", "acl", "acl.h")) in proc.stdout
    assert "op package mx_dcn/_opp/vendors/mx_dcn: skipped -- the NPU glue is not built" in proc.stdout
    assert proc.stdout.strip().endswith("0.1.0")



def test_msopgen_seed_matches_the_op_definitions():
    """kernels_ascend/msopgen/mx_dcn_ops.json (what msOpGen generates the CANN 8.x project from) names
    the same ops, inputs, outputs and attributes, in the same order, as op_host/mx_dcn_ops.cpp (whose
    OpDef replaces the generated one), so the generated project and aclnn API match the kernels."""
    import json
    import re

    with open(os.path.join(ROOT, "kernels_ascend", "op_host", "mx_dcn_ops.cpp")) as f:
        source = f.read()
    shared = re.findall(r'op\.Attr\("(\w+)"\)\.(ListInt|Int)\(\)', source)   # DcnAttrs, called first
    ops = {}
    for name, body in re.findall(r"class (MxDcn\w+) : public OpDef \{(.*?)\n\};", source, re.S):
        ops[name] = dict(
            inputs=[(n, p.lower()) for n, p in re.findall(r'Input\("(\w+)"\)\.ParamType\((\w+)\)', body)],
            outputs=re.findall(r'Output\("(\w+)"\)', body),
            attrs=shared + re.findall(r'this->Attr\("(\w+)"\)\.(ListInt|Int)\(\)', body))
    assert [a for a, _ in ops["MxDcnCol2im"]["attrs"]][-3:] == ["pixel_start", "pixel_count", "deterministic"]
    with open(os.path.join(ROOT, "kernels_ascend", "msopgen", "mx_dcn_ops.json")) as f:
        seed = json.load(f)
    assert [op["op"] for op in seed] == list(ops) == ["MxDcnIm2col", "MxDcnCol2im"]
    for op in seed:
        assert [(i["name"], i["param_type"]) for i in op["input_desc"]] == ops[op["op"]]["inputs"]
        assert [o["name"] for o in op["output_desc"]] == ops[op["op"]]["outputs"]
        assert [(a["name"], {"listInt": "ListInt", "int": "Int"}[a["type"]]) for a in op["attr"]] == ops[op["op"]]["attrs"]
        combos = 3 if op["op"] == "MxDcnIm2col" else 1   # im2col's columns: float32, float16 or bfloat16
        assert all(t["type"] == ["float"] * combos and t["format"] == ["ND"] * combos for t in op["input_desc"])
        want_out = ["float", "float16", "bfloat16"] if combos == 3 else ["float"]
        assert all(t["type"] == want_out and t["format"] == ["ND"] * combos for t in op["output_desc"])
    assert "DataType({ge::DT_FLOAT, ge::DT_FLOAT16, ge::DT_BF16})" in source
