"""Builds mx_dcn and its extension mx_dcn._C against the torch of the Python that runs the build.

    pip install --no-build-isolation .              # into the environment you train in; its torch is used
    pip install --no-build-isolation -e ".[test]"   # a development install (what ci/setup.sh runs)

--no-build-isolation matters: without it pip builds in a fresh environment without torch, and a C++
extension must be compiled against the very torch it will be loaded into. So torch is not a build
requirement (pyproject.toml): with no torch here, the build stops at once and says which to install.

The CPU kernels (mx_dcn/csrc/cpu) are always built. The CUDA kernels (kernels_cuda, glue in
mx_dcn/csrc/cuda) are added on evidence only: torch is a CUDA build, the toolkit's nvcc runs and has
torch's CUDA major version, and its cuda_runtime_api.h is there; otherwise the build is CPU-only and
says why. Switches (checked against mx_dcn/settings.py): MX_DCN_WITH_CUDA=auto|1|0 (1 fails with the
reason when CUDA cannot be built), MX_DCN_NATIVE=1 (-march=native), MX_DCN_SANITIZE=1 (ASan + UBSan,
for ci/sanitize.sh). MAX_JOBS bounds the parallel compiler jobs. The torch_npu glue and the AscendC op
package are added by build_npu.py when torch_npu and a CANN toolkit are found (MX_DCN_WITH_NPU,
MX_DCN_NPU_OPP; kernels_ascend/README.md).

The compiler steps are printed as they finish (pip shows them with -v). Objects are kept in
build/obj-<python>-torch<version>-<variant>/, so installing again with the same torch (editable or
not) recompiles only what changed: pip's editable installs would otherwise build everything afresh
in a temporary directory each time.
"""
import glob
import importlib.util
import os
import re
import subprocess
import sys
import time

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_MIN = (2, 4)              # torch.library.register_fake and the op-registration API the glue uses
TORCH_TESTED = "2.13.0 (CI) and 2.14.1 (by hand, 2026-12-02)"


def _settings():
    """mx_dcn/settings.py, loaded by path: importing the package would import torch and the extension."""
    spec = importlib.util.spec_from_file_location("_mx_dcn_settings", os.path.join(HERE, "mx_dcn", "settings.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _fail(message: str):
    raise SystemExit(f"\nmx_dcn: {message}\n")


def _import_torch():
    """torch, or a stop that says which torch to install and how."""
    try:
        import torch
    except ImportError as e:
        _fail(f"torch is not importable by {sys.executable} ({e}).\n"
              "mx_dcn compiles a C++ extension against the torch it will run with, so install torch first\n"
              f"(torch >= {TORCH_MIN[0]}.{TORCH_MIN[1]}; tested: {TORCH_TESTED}), then build in the same "
              "environment:\n"
              "    pip install torch==2.13.0        # what CI tests; or the torch (and torch_npu) your training uses\n"
              "    pip install --no-build-isolation .\n"
              "If torch is installed and you still see this, pip built in an isolated environment: add "
              "--no-build-isolation.")
    version = tuple(int(p) for p in re.findall(r"\d+", torch.__version__)[:2])
    if version < TORCH_MIN:
        _fail(f"torch {torch.__version__} is older than the oldest supported, {TORCH_MIN[0]}.{TORCH_MIN[1]} "
              f"(tested: {TORCH_TESTED}). mx_dcn never installs or upgrades torch itself: upgrade it the way "
              "your environment expects (e.g. with the matching torch_npu), then build again.")
    return torch


def _rel(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern), recursive=True))


def _cxx_standard(torch_version: str) -> str:
    """The C++ standard torch's headers need: C++20 from torch 2.14 on (ATen.h refuses older), C++17 before."""
    major, minor = (int(part) for part in torch_version.split("+")[0].split(".")[:2])
    return "-std=c++20" if (major, minor) >= (2, 14) else "-std=c++17"


def cuda_evidence(torch_cuda, cuda_home, run=subprocess.run):
    """Why the CUDA kernels cannot be built here ([] when they can), from what is actually present:
    torch's CUDA version, a toolkit whose nvcc runs and matches it, and the toolkit's runtime header."""
    if not torch_cuda:
        return ["torch is a CPU-only build (torch.version.cuda is None)"]
    if not cuda_home:
        return ["no CUDA toolkit found (no nvcc on PATH, CUDA_HOME unset)"]
    problems = []
    nvcc = os.path.join(cuda_home, "bin", "nvcc")
    try:
        out = run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
        release = re.search(r"release (\d+)\.(\d+)", out.stdout or "")
    except (OSError, subprocess.SubprocessError) as e:
        out, release = None, None
        problems.append(f"{nvcc} does not run ({type(e).__name__}: {e})")
    if out is not None and (out.returncode != 0 or not release):
        problems.append(f"{nvcc} --version failed or printed no release")
    elif release and release.group(1) != str(torch_cuda).split(".")[0]:
        problems.append(f"nvcc is CUDA {release.group(1)}.{release.group(2)} but torch was built with CUDA "
                        f"{torch_cuda}")
    header = os.path.join(cuda_home, "include", "cuda_runtime_api.h")
    if not os.path.isfile(header):
        problems.append(f"{header} is missing (CUDA_HOME={cuda_home}; set CUDA_HOME to the toolkit's root, "
                        "e.g. /usr/local/cuda)")
    return problems


def _cuda_plan(torch, settings):
    """(build CUDA?, the sentence the build prints about it)."""
    switch = settings.get("MX_DCN_WITH_CUDA")
    if switch in ("0", "false"):
        return False, "CPU kernels only (MX_DCN_WITH_CUDA=0)"
    from torch.utils import cpp_extension

    problems = cuda_evidence(torch.version.cuda, cpp_extension.CUDA_HOME)
    if problems and switch in ("1", "true"):
        _fail("MX_DCN_WITH_CUDA=1 but the CUDA kernels cannot be built: " + "; ".join(problems))
    if problems:
        return False, "CPU kernels only: " + "; ".join(problems) + " (MX_DCN_WITH_CUDA=1 makes this an error)"
    return True, f"CPU and CUDA kernels (toolkit {cpp_extension.CUDA_HOME}, torch CUDA {torch.version.cuda})"


def core_extension(torch, settings):
    """mx_dcn._C: the op schemas, the CPU kernels and, on evidence, the CUDA kernels."""
    from torch.utils import cpp_extension

    cpu_sources = _rel("mx_dcn/csrc/*.cpp") + _rel("mx_dcn/csrc/cpu/*.cpp")
    include_dirs = [os.path.join(HERE, "mx_dcn", "csrc"), os.path.join(HERE, "kernels_cuda", "include")]
    std = _cxx_standard(torch.__version__)
    # -fno-trapping-math (clang's default): the kernels never read floating-point exception flags, and
    # without it GCC will not vectorise loops that convert or compare floats (the sampling plans).
    cxx = ["-O3", std, "-fvisibility=hidden", "-fno-trapping-math"]
    if settings.get("MX_DCN_NATIVE"):
        cxx.append("-march=native")
    link = []
    if settings.get("MX_DCN_SANITIZE"):
        # -g1 (line tables) is what the sanitizers' stack traces use; full -g compiled ~1.6x slower.
        cxx = ["-O1", "-g1", std, "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
               "-fno-sanitize-recover=undefined"]
        link = ["-fsanitize=address,undefined"]
    # -fopenmp: at::parallel_for is a header template that only runs in parallel when the extension
    # itself is compiled with OpenMP (it then shares torch's libgomp.so.1).
    cxx, link = cxx + ["-fopenmp"], link + ["-fopenmp"]
    # A header change must rebuild (setuptools compares the sources only; ninja then recompiles what it touches).
    depends = _rel("mx_dcn/csrc/**/*.h") + _rel("kernels_cuda/include/**/*.h")
    with_cuda, plan = _cuda_plan(torch, settings)
    if with_cuda:
        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
            # torch derives the targets from the visible GPUs and fails on none (an IndexError deep in
            # cpp_extension); build for the architectures ci/nvcc_check.sh checks instead, plus PTX
            # for newer GPUs to compile at load time.
            os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0+PTX"
            plan += "; no GPU visible and TORCH_CUDA_ARCH_LIST unset: for 8.0;9.0+PTX"
        sources = cpu_sources + _rel("mx_dcn/csrc/cuda/*.cpp") + _rel("kernels_cuda/*.cu")
        ext = cpp_extension.CUDAExtension(
            "mx_dcn._C", sources, include_dirs=include_dirs, define_macros=[("MX_DCN_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", std, "--expt-relaxed-constexpr"]},
            extra_link_args=link, depends=depends + _rel("kernels_cuda/*.cuh"))
    else:
        ext = cpp_extension.CppExtension("mx_dcn._C", sources=cpu_sources, include_dirs=include_dirs,
                                         extra_compile_args={"cxx": cxx}, extra_link_args=link, depends=depends)
    ext.mx_dcn_plan = plan
    ext.mx_dcn_variant = ("cuda" if with_cuda else "cpu") + ("-sanitize" if settings.get("MX_DCN_SANITIZE") else "")
    return ext


def _has_files(directory: str) -> bool:
    return any(files for _, _, files in os.walk(directory))


def build_ext_class(torch):
    """torch's BuildExtension (ninja), with the objects kept between builds and the progress shown."""
    from torch.utils import cpp_extension

    class BuildExtension(cpp_extension.BuildExtension):
        def finalize_options(self):
            super().finalize_options()
            # setuptools adds a virtual environment's include/ to every compiler command; mx_dcn needs no
            # header from there, and without it the commands -- hence the kept objects -- are the same in
            # every environment that has the same torch.
            venv_include = os.path.join(sys.exec_prefix, "include")
            if sys.exec_prefix != sys.base_exec_prefix and not _has_files(venv_include):
                self.include_dirs = [d for d in self.include_dirs or [] if d != venv_include]

        def build_extension(self, ext):
            python = f"py{sys.version_info[0]}{sys.version_info[1]}"
            variant = getattr(ext, "mx_dcn_variant", "")
            self.build_temp = os.path.join(HERE, "build", f"obj-{python}-torch{torch.__version__}-{variant}")
            # ninja prints each finished step as "[done/total, seconds] command"
            os.environ.setdefault("NINJA_STATUS", "mx_dcn build [%f/%t, %es] ")
            jobs = os.environ.get("MAX_JOBS") or f"{os.cpu_count()} (set MAX_JOBS to change)"
            print(f"mx_dcn: {ext.name}: {getattr(ext, 'mx_dcn_plan', '')}. {len(ext.sources)} sources, {jobs} "
                  f"compiler jobs, objects kept in {os.path.relpath(self.build_temp, HERE)} (a first build takes "
                  "~3 minutes on 2 cores; a repeat recompiles only what changed)", flush=True)
            start = time.monotonic()
            super().build_extension(ext)
            print(f"mx_dcn: {ext.name} ready after {time.monotonic() - start:.0f} s", flush=True)

    return BuildExtension.with_options(use_ninja=True)


def extensions():
    """(ext_modules, cmdclass). Further extensions append to the list; all build with one command class."""
    settings = _settings()
    try:
        settings.check_all(("MX_DCN_WITH_CUDA", "MX_DCN_NATIVE", "MX_DCN_SANITIZE"))
    except ValueError as e:
        _fail(str(e))
    torch = _import_torch()
    return [core_extension(torch, settings)], {"build_ext": build_ext_class(torch)}


if __name__ == "__main__":  # pip's build backend and `python setup.py` run it so; tests import the helpers
    ext_modules, cmdclass = extensions()
    # The NPU glue and op package (build_npu.py), decided from what this machine has.
    sys.path.insert(0, HERE)
    ext_modules, cmdclass = __import__("build_npu").add_to(ext_modules, cmdclass)
    setup(
        name="mx_dcn",
        version="0.1.0",
        description="Deformable convolution (DCNv1/DCNv2) for PyTorch on CPU, CUDA and Ascend NPU",
        packages=find_packages(include=["mx_dcn", "mx_dcn.*"]),
        package_data={"mx_dcn": ["csrc/**/*.h"]},
        python_requires=">=3.9",
        # Satisfied by the torch the build ran against (checked above): pip leaves it as it is.
        install_requires=[f"torch>={TORCH_MIN[0]}.{TORCH_MIN[1]}", "numpy"],
        extras_require={
            "test": ["pytest", "pytest-xdist", "hypothesis", "onnx", "onnxruntime", "onnxscript", "matplotlib"],
            "plot": ["matplotlib"],
        },
        ext_modules=ext_modules,
        cmdclass=cmdclass,
        entry_points={"console_scripts": ["mx-dcn = mx_dcn.cli:main"]},
    )
