"""The CUDA kernel backend: kernels_cuda (framework-free sampling kernels) behind the torch glue in
mx_dcn/csrc/cuda, registered as the CUDA implementation of torch.ops.mx_dcn.deform_conv2d.

Backward of grad x: atomicAdd by default (fast, summation order varies run to run); a deterministic
sort-and-gather path (slower, bitwise reproducible) when `torch.use_deterministic_algorithms(True)` is
in force or MX_DCN_DETERMINISTIC=1. The C++ glue makes the same decision (`deterministic_backward`
in mx_dcn/csrc/cuda/deform_conv_cuda.cpp); `deterministic_requested()` mirrors it for explain.
"""
from __future__ import annotations

import os
from typing import List, Optional

import torch

from .. import settings
from ..problem import FLOATING_DTYPES, Problem
from .base import AVAILABLE, DETERMINISTIC_ENV, Availability, Backend, Violation, unavailable

# The deterministic backward lists 4 entries per sample point of a chunk, indexed by uint32 and
# sorted by CUB; one image must fit (kMaxDeterministicEntries in mx_dcn_cuda/kernels.h).
MAX_DETERMINISTIC_ENTRIES = 2**31 - 1
_OP = "mx_dcn::deform_conv2d"


def deterministic_requested() -> bool:
    """Whether the CUDA backward uses its deterministic (no float atomics) grad-x path."""
    return torch.are_deterministic_algorithms_enabled() or settings.get(DETERMINISTIC_ENV)


def unavailability_reason(torch_version: str, torch_cuda: Optional[str], load_error: Optional[str],
                          has_cuda_kernel: bool, device_count: int) -> str:
    """Why the backend cannot run, from the facts in the order they are checked ("" when it can).
    Separate from `available()` so every branch is testable on a machine without CUDA."""
    if not torch_cuda:
        return f"torch {torch_version} has no CUDA support (torch.version.cuda is {torch_cuda!r})"
    if load_error:
        return load_error
    if not has_cuda_kernel:
        return (f"mx_dcn._C was built without CUDA (no CUDA kernel registered for {_OP}); rebuild it "
                "with a CUDA toolkit, CUDA_HOME set and MX_DCN_WITH_CUDA=1")
    if device_count < 1:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hint = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
        return f"no CUDA device visible (torch.cuda.device_count() is 0{hint})"
    return ""


def _facts():
    """The facts `unavailability_reason` judges, gathered cheaply and in order (later ones are only
    looked up when the earlier ones pass, so a CPU-only torch never loads the extension here)."""
    version, cuda = torch.__version__, torch.version.cuda
    if not cuda:
        return version, cuda, None, False, 0
    from .. import ops
    error = ops.load_error()
    if error:
        return version, cuda, error, False, 0
    has_kernel = torch._C._dispatch_has_kernel_for_dispatch_key(_OP, "CUDA")
    return version, cuda, None, has_kernel, torch.cuda.device_count() if has_kernel else 0


class CudaBackend(Backend):
    name = "cuda"
    device_types = ("cuda",)
    description = "CUDA kernels (kernels_cuda): fp32 accumulation, optional deterministic backward"
    limits = ("dtype: one of float32, float64, float16, bfloat16",
              f"deterministic_size: in deterministic mode, at most {MAX_DETERMINISTIC_ENTRIES} sample corners per "
              "image (4*dg*kh*kw*H_out*W_out)")
    determinism = ("a sort-and-gather grad-x path under torch.use_deterministic_algorithms(True) or "
                   f"{DETERMINISTIC_ENV}=1 (atomic adds otherwise); compiled here, never run on a GPU")

    def _probe(self) -> Availability:
        reason = unavailability_reason(*_facts())
        return unavailable(reason) if reason else AVAILABLE

    def violations(self, problem: Problem) -> List[Violation]:
        out = []
        if problem.dtype not in FLOATING_DTYPES:
            out.append(Violation("dtype", f"expected one of float32, float64, float16, bfloat16, got {problem.dtype}"))
        entries = 4 * problem.deformable_groups * problem.kernel_taps * problem.out_height * problem.out_width
        # With unknown sizes (a traced graph) the kernel enforces this limit itself (TORCH_CHECK in
        # mx_dcn/csrc/cuda/deform_conv_cuda.cpp).
        if deterministic_requested() and entries > MAX_DETERMINISTIC_ENTRIES and not problem.unknown_sizes:
            out.append(Violation(
                "deterministic_size",
                f"the deterministic backward handles at most {MAX_DETERMINISTIC_ENTRIES} sample corners "
                f"per image, this call has {entries} (4*dg*kh*kw*H_out*W_out); unset {DETERMINISTIC_ENV} "
                "and torch.use_deterministic_algorithms to use the atomic backward"))
        return out

    def run(self, problem, x, offset, mask, weight, bias):
        from .. import ops
        return ops.deform_conv2d(x, offset, mask, weight, bias, problem.stride, problem.padding,
                                 problem.dilation, problem.groups, problem.deformable_groups)
