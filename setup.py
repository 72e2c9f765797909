"""Builds mx_dcn and its extension mx_dcn._C.

The CPU kernels (mx_dcn/csrc/cpu) are always built. The CUDA kernels (kernels_cuda, glue in
mx_dcn/csrc/cuda) are added when a CUDA toolkit and a CUDA build of torch are both present.
MX_DCN_WITH_CUDA=1 forces the CUDA build (and fails loudly if it cannot), =0 disables it.
MX_DCN_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer (for ci/sanitize.sh).
"""
import glob
import os
import sys

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def _rel(pattern):
    return sorted(os.path.relpath(p, HERE) for p in glob.glob(os.path.join(HERE, pattern), recursive=True))


def _want_cuda(torch_version_cuda, cuda_home):
    switch = os.environ.get("MX_DCN_WITH_CUDA", "auto").lower()
    if switch in ("0", "no", "false", "off"):
        return False
    have = bool(torch_version_cuda) and bool(cuda_home)
    if switch in ("1", "yes", "true", "on") and not have:
        raise RuntimeError("MX_DCN_WITH_CUDA=1 but the CUDA build is impossible: "
                           f"torch.version.cuda={torch_version_cuda!r}, CUDA_HOME={cuda_home!r}")
    return have


def _cxx_standard(torch_version: str) -> str:
    """The C++ standard torch's headers need: C++20 from torch 2.14 on (ATen.h refuses older), C++17 before."""
    major, minor = (int(part) for part in torch_version.split("+")[0].split(".")[:2])
    return "-std=c++20" if (major, minor) >= (2, 14) else "-std=c++17"


def extensions():
    cpu_sources = _rel("mx_dcn/csrc/*.cpp") + _rel("mx_dcn/csrc/cpu/*.cpp")
    if not cpu_sources:
        return [], {}
    import torch
    from torch.utils import cpp_extension

    include_dirs = [os.path.join(HERE, "mx_dcn", "csrc"), os.path.join(HERE, "kernels_cuda", "include")]
    std = _cxx_standard(torch.__version__)
    # -fno-trapping-math (clang's default): the kernels never read floating-point exception flags, and
    # without it GCC will not vectorise loops that convert or compare floats (the sampling plans).
    cxx = ["-O3", std, "-fvisibility=hidden", "-fno-trapping-math"]
    if os.environ.get("MX_DCN_NATIVE", "0") == "1":
        cxx.append("-march=native")
    link = []
    if os.environ.get("MX_DCN_SANITIZE", "0") == "1":
        cxx = ["-O1", "-g", std, "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
               "-fno-sanitize-recover=undefined"]
        link = ["-fsanitize=address,undefined"]
    # -fopenmp: at::parallel_for is a header template that only runs in parallel when the extension
    # itself is compiled with OpenMP (it then shares torch's libgomp.so.1).
    cxx, link = cxx + ["-fopenmp"], link + ["-fopenmp"]
    if _want_cuda(torch.version.cuda, cpp_extension.CUDA_HOME):
        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
            # torch derives the targets from the visible GPUs and fails on none (an IndexError deep in
            # cpp_extension); build for the architectures ci/nvcc_check.sh checks instead, plus PTX
            # for newer GPUs to compile at load time.
            os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0+PTX"
            print("mx_dcn: no GPU visible and TORCH_CUDA_ARCH_LIST unset: building CUDA kernels for 8.0;9.0+PTX "
                  "(set TORCH_CUDA_ARCH_LIST to choose, or MX_DCN_WITH_CUDA=0 for a CPU-only build)")
        sources = cpu_sources + _rel("mx_dcn/csrc/cuda/*.cpp") + _rel("kernels_cuda/*.cu")
        ext = cpp_extension.CUDAExtension(
            "mx_dcn._C", sources, include_dirs=include_dirs, define_macros=[("MX_DCN_WITH_CUDA", "1")],
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", std, "--expt-relaxed-constexpr"]},
            extra_link_args=link)
    else:
        ext = cpp_extension.CppExtension("mx_dcn._C", cpu_sources, include_dirs=include_dirs,
                                         extra_compile_args={"cxx": cxx}, extra_link_args=link)
    return [ext], {"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)}


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
    install_requires=["torch>=2.4", "numpy"],
    extras_require={
        "test": ["pytest", "hypothesis", "onnx", "onnxruntime", "onnxscript", "matplotlib"],
        "plot": ["matplotlib"],
    },
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    entry_points={"console_scripts": ["mx-dcn = mx_dcn.cli:main"]},
)
