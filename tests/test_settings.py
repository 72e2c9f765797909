"""The MX_DCN_* environment variables: one table (mx_dcn/settings.py) that every reader goes through,
bad values rejected at use with the valid ones listed, and `mx-dcn info` flagging them."""
import glob
import os
import re
import subprocess
import sys

import pytest

import mx_dcn
from mx_dcn import registry, settings
from mx_dcn.backends import cuda as cuda_backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where the code reads a variable: os.environ / os.getenv in Python, getenv in C++ (macros of the same
# prefix, such as MX_DCN_X86, are not variables).
_PY_READ = re.compile(r"""(?:environ(?:\.get)?\(?\[?|getenv\(|_switch\(environ,)\s*["'](MX_DCN_[A-Z0-9_]+)""")
_CXX_READ = re.compile(r"""getenv\("(MX_DCN_[A-Z0-9_]+)"\)""")


def _read_in_code():
    found = {}
    for path in glob.glob(os.path.join(ROOT, "mx_dcn", "**", "*.py"), recursive=True) + [os.path.join(ROOT, "setup.py"),
                                                                                     os.path.join(ROOT, "build_npu.py")]:
        for name in _PY_READ.findall(open(path).read()):
            found.setdefault(name, os.path.relpath(path, ROOT))
    for ext in ("cpp", "h", "cu"):
        for path in glob.glob(os.path.join(ROOT, "mx_dcn", "csrc", "**", f"*.{ext}"), recursive=True):
            for name in _CXX_READ.findall(open(path).read()):
                found.setdefault(name, os.path.relpath(path, ROOT))
    return found


def test_every_variable_the_code_reads_is_in_the_table():
    found = _read_in_code()
    assert {"MX_DCN_CPU_ISA", "MX_DCN_WORKSPACE_CACHE_MB", "MX_DCN_DETERMINISTIC"} <= set(found)  # the scan works
    missing = {name: where for name, where in found.items() if name not in settings.VARIABLES}
    assert not missing, f"read but not in mx_dcn/settings.py: {missing}"


def test_python_reads_them_only_through_the_table():
    """Outside settings.py the package names a variable but never reads os.environ for it itself."""
    for path in glob.glob(os.path.join(ROOT, "mx_dcn", "**", "*.py"), recursive=True):
        if path.endswith("settings.py"):
            continue
        assert not _PY_READ.findall(open(path).read()), f"{path} reads an MX_DCN_* variable from os.environ"


def test_the_backend_choices_are_the_registrys():
    assert settings.BACKENDS == registry.backend_names()


@pytest.mark.parametrize("name, bad, accepts", [
    ("MX_DCN_BACKEND", "foo", "one of cpu, cuda, ascendc, cann, portable"),
    ("MX_DCN_STRICT", "yes", "0, 1, false or true"),
    ("MX_DCN_WORKSPACE_MB", "0.5", "a number of megabytes >= 1"),
    ("MX_DCN_WORKSPACE_CACHE_MB", "inf", "a number of megabytes >= 0"),
    ("MX_DCN_CPU_ISA", "sse", "base, avx2 or avx512 (one this CPU supports)"),
    ("MX_DCN_CPU_GEMM", "fast", "own or blas"),
    ("MX_DCN_TILE_KB", "-1", "a positive integer"),
    ("MX_DCN_ROUND_TILES", "two", "a positive integer"),
    ("MX_DCN_DETERMINISTIC", "TRUE", "0, 1, false or true"),
    ("MX_DCN_WITH_CUDA", "on", "auto, 0, 1, false or true"),
])
def test_a_bad_value_names_the_variable_and_the_valid_values(name, bad, accepts):
    with pytest.raises(ValueError) as e:
        settings.get(name, {name: bad})
    assert str(e.value) == f"{name}: expected {accepts}, got {bad!r}"


def test_unset_and_empty_give_the_defaults():
    for name, var in settings.VARIABLES.items():
        assert settings.get(name, {}) == var.default == settings.get(name, {name: ""})
    assert settings.get("MX_DCN_WORKSPACE_MB", {"MX_DCN_WORKSPACE_MB": "64"}) == 64.0
    assert settings.get("MX_DCN_STRICT", {"MX_DCN_STRICT": "true"}) is True


def test_strict_and_deterministic_reject_bad_values_at_use(monkeypatch):
    monkeypatch.setenv("MX_DCN_STRICT", "yes")
    with pytest.raises(ValueError, match="MX_DCN_STRICT: expected 0, 1, false or true, got 'yes'"):
        registry.strict_enabled()
    monkeypatch.setenv("MX_DCN_DETERMINISTIC", "on")
    with pytest.raises(ValueError, match="MX_DCN_DETERMINISTIC: expected 0, 1, false or true"):
        cuda_backend.deterministic_requested()
    monkeypatch.setenv("MX_DCN_DETERMINISTIC", "1")
    assert cuda_backend.deterministic_requested() is True


def test_a_forced_backend_from_the_environment_is_checked_at_the_call(monkeypatch):
    import torch

    monkeypatch.setenv("MX_DCN_BACKEND", "fastest")
    x = torch.randn(1, 4, 5, 5)
    with pytest.raises(ValueError, match="MX_DCN_BACKEND: expected one of cpu, cuda, ascendc, cann, portable"):
        mx_dcn.modulated_deform_conv2d(x, torch.zeros(1, 18, 5, 5), torch.ones(1, 9, 5, 5),
                                       torch.randn(4, 4, 3, 3), None, 1, 1)


@pytest.mark.parametrize("name, bad, accepts", [("MX_DCN_CPU_GEMM", "fast", "own or blas"),
                                                ("MX_DCN_TILE_KB", "big", "a positive integer")])
def test_the_kernels_variables_are_checked_before_the_extension_reads_them(name, bad, accepts):
    """The C++ kernel would take MX_DCN_TILE_KB=big as the default without a word: mx_dcn.ops refuses
    it first (a fresh process: the extension is loaded once per process)."""
    env = dict(os.environ, **{name: bad})
    proc = subprocess.run([sys.executable, "-c", "import mx_dcn.ops as o; o.load()"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and f"ValueError: {name}: expected {accepts}, got {bad!r}" in proc.stderr, proc.stderr


def test_report_flags_bad_values_and_names_nobody_reads():
    rows = {r["name"]: r for r in settings.report({"MX_DCN_BACKEND": "foo", "MX_DCN_BACKENDS": "cpu",
                                                   "MX_DCN_STICT": "1", "MX_DCN_CPU_GEMM": "own", "PATH": "/bin"})}
    assert set(rows) == {"MX_DCN_BACKEND", "MX_DCN_BACKENDS", "MX_DCN_STICT", "MX_DCN_CPU_GEMM"}
    assert rows["MX_DCN_CPU_GEMM"]["problem"] is None and rows["MX_DCN_CPU_GEMM"]["read_by"] == "mx_dcn._C"
    assert rows["MX_DCN_BACKEND"]["problem"].startswith("MX_DCN_BACKEND: expected one of cpu")
    assert "did you mean MX_DCN_BACKEND?" in rows["MX_DCN_BACKENDS"]["problem"]
    assert "did you mean MX_DCN_STRICT?" in rows["MX_DCN_STICT"]["problem"]
