"""The install path: setup.py's decisions (which torch, whether CUDA) and the documented commands.

The installs themselves run in CI: ci/setup.sh runs the README's fresh-machine commands in a new
virtual environment, ci/install_check.sh the existing-environment command in a second one, each
checking that torch came through untouched. Here: the pieces those steps rely on.
"""
import importlib.util
import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


setup_py = _load("setup.py", "_mx_dcn_setup_under_test")       # defines its helpers; setup() runs only as __main__
fingerprint = _load("ci/torch_fingerprint.py", "_mx_dcn_torch_fingerprint")


def run_setup_py(*args, torch_stand_in=None):
    """`python setup.py ARGS` with torch missing (None) or replaced by a module of that source."""
    if torch_stand_in is None:
        prelude = "sys.modules['torch'] = None  # import torch raises ImportError"
    else:
        prelude = f"import types; sys.modules['torch'] = t = types.ModuleType('torch'); exec({torch_stand_in!r}, t.__dict__)"
    code = f"import runpy, sys\n{prelude}\nsys.argv = ['setup.py', *{list(args)!r}]\nrunpy.run_path('setup.py', run_name='__main__')"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_without_torch_the_build_says_which_torch_to_install():
    proc = run_setup_py("--version")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "torch is not importable" in proc.stderr
    assert "pip install torch==2.13.0" in proc.stderr and "pip install --no-build-isolation ." in proc.stderr
    assert "torch >= 2.4" in proc.stderr and "2.13.0 (CI)" in proc.stderr


def test_a_torch_older_than_supported_is_refused_not_upgraded():
    proc = run_setup_py("--version", torch_stand_in="__version__ = '2.1.2+cu121'")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "torch 2.1.2+cu121 is older than the oldest supported, 2.4" in proc.stderr
    assert "never installs or upgrades torch" in proc.stderr


def test_a_bad_build_switch_is_refused_with_the_valid_values():
    env = dict(os.environ, MX_DCN_WITH_CUDA="maybe")
    proc = subprocess.run([sys.executable, "setup.py", "--version"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "MX_DCN_WITH_CUDA: expected auto, 0, 1, false or true, got 'maybe'" in proc.stderr


def test_the_build_requirements_leave_torch_to_the_environment():
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    requires = re.search(r"requires\s*=\s*\[(.*?)\]", text, re.S).group(1)
    assert "setuptools" in requires and "torch" not in requires


# --------------------------------------------------------------------------- CUDA on evidence


def _toolkit(tmp_path, release="13.0", header=True, nvcc_runs=True):
    home = tmp_path / "cuda"
    (home / "bin").mkdir(parents=True)
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\n" + (f"echo 'Cuda compilation tools, release {release}, V{release}.1'\n" if nvcc_runs
                                      else "exit 3\n"))
    nvcc.chmod(0o755)
    if header:
        (home / "include").mkdir()
        (home / "include" / "cuda_runtime_api.h").write_text("")
    return str(home)


def test_cuda_is_built_only_on_evidence(tmp_path):
    assert setup_py.cuda_evidence(None, _toolkit(tmp_path)) == ["torch is a CPU-only build (torch.version.cuda is None)"]
    assert "no CUDA toolkit found" in setup_py.cuda_evidence("13.0", None)[0]
    assert setup_py.cuda_evidence("13.0", _toolkit(tmp_path / "ok")) == []


def test_an_nvcc_without_its_headers_means_a_cpu_build(tmp_path):
    """This machine's case: nvcc on PATH is a wrapper in /usr/local/bin, so torch takes /usr/local for
    the toolkit, where there is no cuda_runtime_api.h (the CUDA build died on it)."""
    problems = setup_py.cuda_evidence("13.0", _toolkit(tmp_path, header=False))
    assert len(problems) == 1 and "cuda_runtime_api.h is missing" in problems[0] and "CUDA_HOME" in problems[0]


def test_an_nvcc_that_fails_or_differs_from_torch_means_a_cpu_build(tmp_path):
    assert "--version failed" in setup_py.cuda_evidence("13.0", _toolkit(tmp_path / "a", nvcc_runs=False))[0]
    mismatch = setup_py.cuda_evidence("12.8", _toolkit(tmp_path / "b", release="13.0"))
    assert mismatch == ["nvcc is CUDA 13.0 but torch was built with CUDA 12.8"]


def test_this_machine_builds_cpu_only_and_says_why():
    """The real decision on this machine, as setup.py prints it before compiling."""
    import torch

    settings = _load("mx_dcn/settings.py", "_mx_dcn_settings_for_setup")
    with_cuda, plan = setup_py._cuda_plan(torch, settings)
    if torch.version.cuda is None:
        assert not with_cuda and plan.startswith("CPU kernels only: torch is a CPU-only build")


# --------------------------------------------------------------------------- the documented commands


def _readme():
    return open(os.path.join(ROOT, "README.md")).read()


def test_the_readme_commands_are_the_ones_ci_runs():
    """Every install command the README gives is run, as written, by a CI step (ci/setup.sh runs its
    commands through run_documented, which prints and evaluates the very text)."""
    readme, setup_sh = _readme(), open(os.path.join(ROOT, "ci", "setup.sh")).read()
    install_check = open(os.path.join(ROOT, "ci", "install_check.sh")).read()
    fresh = ["python3 -m venv .venv && . .venv/bin/activate", "pip install torch==2.13.0 numpy setuptools wheel ninja",
             'pip install -v --no-build-isolation -e ".[test]"', "pip install -v --no-build-isolation -e ."]
    for command in fresh:
        assert command in readme, command
        assert f'run_documented "{command}"' in setup_sh or f"run_documented '{command}'" in setup_sh, command
    first = ("bash ci/setup.sh && . .venv/bin/activate && python -m mx_dcn.demo && "
             "python examples/train_dcn_head.py --steps 30")
    assert first in readme and f'"{first}"' in open(os.path.join(ROOT, "ci", "test.sh")).read()
    existing = "pip install --no-build-isolation ."
    assert existing in readme and re.search(r"^pip install --no-build-isolation \. ", install_check, re.M)


def test_the_readme_is_short_and_no_file_names_a_missing_design_doc():
    assert len(_readme().encode()) <= 12 * 1024
    assert os.path.isfile(os.path.join(ROOT, "docs", "design.md"))
    offenders = []
    for base, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("build", "__pycache__")]
        for name in files:
            if name.endswith((".py", ".md", ".h", ".cpp", ".cu", ".sh", ".toml", ".txt")):
                path = os.path.join(base, name)
                if "DESIGN.md" in open(path, errors="replace").read() and name != "test_install.py":
                    offenders.append(os.path.relpath(path, ROOT))
    assert not offenders, f"these name DESIGN.md, which is not in the repository: {offenders}"


def test_every_python_directory_of_the_package_goes_into_the_wheel():
    """A directory without __init__.py is left out of a (non-editable) install: mx_dcn.testing was,
    and the installed `mx-dcn` failed at start (ci/install_check.sh found it)."""
    from setuptools import find_packages

    packaged = set(find_packages(ROOT, include=["mx_dcn", "mx_dcn.*"]))
    with_python = {os.path.relpath(base, ROOT).replace(os.sep, ".")
                   for base, _, files in os.walk(os.path.join(ROOT, "mx_dcn"))
                   if any(f.endswith(".py") for f in files) and "__pycache__" not in base
                   and "csrc" not in os.path.relpath(base, ROOT).split(os.sep)}  # csrc: C++ and its build scripts
    assert with_python - packaged == set()


# --------------------------------------------------------------------------- torch untouched


def test_the_torch_fingerprint_sees_a_changed_file(tmp_path, monkeypatch):
    """ci/setup.sh and ci/install_check.sh compare it before and after the install: it must change
    when any file of torch does (a reinstall rewrites them all; here one is touched)."""
    site = tmp_path / "site"
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("__version__ = '9.9.0'\n")
    info = site / "torch-9.9.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 9.9.0\n")
    (info / "RECORD").write_text("torch/__init__.py,,\ntorch-9.9.0.dist-info/METADATA,,\ntorch-9.9.0.dist-info/RECORD,,\n")
    monkeypatch.syspath_prepend(str(site))
    first = fingerprint.fingerprint()
    assert first.startswith("torch 9.9.0 at ") and "3 files" in first
    assert fingerprint.fingerprint() == first
    os.utime(site / "torch" / "__init__.py", ns=(1, 1))
    assert fingerprint.fingerprint() != first


def test_ci_scripts_are_valid_bash():
    for script in ("setup.sh", "install_check.sh", "test.sh"):
        proc = subprocess.run(["bash", "-n", os.path.join(ROOT, "ci", script)], capture_output=True, text=True)
        assert proc.returncode == 0, (script, proc.stderr)


def test_a_venv_include_dir_stays_out_of_the_compiler_commands():
    """install_check.sh relinks instead of recompiling only if the commands are the same in every venv
    with the same torch: setuptools adds the venv's include/, which setup.py drops while it is empty."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("not run in a virtual environment (ci/setup.sh's .venv is one)")
    code = textwrap.dedent("""
        import sys, importlib.util, setuptools.dist, torch
        spec = importlib.util.spec_from_file_location("s", "setup.py"); s = importlib.util.module_from_spec(spec)
        sys.modules["s"] = s; spec.loader.exec_module(s)
        cmd = s.build_ext_class(torch)(setuptools.dist.Distribution({"name": "x"})); cmd.ensure_finalized()
        print(cmd.include_dirs)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    venv_include = os.path.join(sys.exec_prefix, "include")
    assert (venv_include in proc.stdout) == setup_py._has_files(venv_include), proc.stdout
