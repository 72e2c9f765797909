"""The C++ CPU kernel backend: the registered op torch.ops.mx_dcn.deform_conv2d (mx_dcn/ops.py,
kernels in mx_dcn/csrc/cpu). Available when the extension mx_dcn._C is built; it takes every valid
CPU call (any kernel size, stride, padding, dilation, groups, deformable groups, the four floating
dtypes, any memory layout) whose image plane and sampling coordinates fit its 32-bit indices."""
from typing import List

import torch

from ..problem import Problem
from .base import AVAILABLE, Backend, Violation, unavailable

# The kernel indexes a channels-last image plane, plus the zero row out-of-image corners point at,
# with 32-bit integers (mx_dcn/csrc/cpu/kernels.h): H*W + 1 must stay below 2^31. Its sampling plans
# compute coordinates, which lie in [-pad, H + pad), in 32 bits too: H + 2*pad below 2^31.
MAX_INT32 = 2**31 - 1


class CpuBackend(Backend):
    name = "cpu"
    device_types = ("cpu",)
    description = "C++ CPU kernels (mx_dcn._C): channels-last sampling, cache-tiled GEMM, deterministic backward"
    limits = ("plane_size: H*W + 1 <= 2^31 - 1 (32-bit plane indices)",
              "padded_extent: H + 2*pad_h and W + 2*pad_w <= 2^31 - 1 (32-bit sampling coordinates)")
    determinism = ("by construction: grad x is partitioned so no two threads add into one element, sums keep "
                   "their order whatever the thread count (tested bitwise)")

    def available(self):
        from .. import ops
        error = ops.load_error()
        return AVAILABLE if error is None else unavailable(error)

    def violations(self, problem: Problem) -> List[Violation]:
        found = []
        if problem.unknown_sizes:  # traced for any size: the kernel itself refuses a plane beyond these
            return found           # limits (TORCH_CHECK_VALUE in mx_dcn/csrc/cpu/deform_conv_cpu.cpp)
        rows = problem.height * problem.width + 1
        if rows > MAX_INT32:
            found.append(Violation("plane_size", f"H*W + 1 = {rows} exceeds 2^31 - 1: the kernel indexes an "
                                                 "image plane with 32-bit integers"))
        (pad_h, pad_w) = problem.padding
        extent = max(problem.height + 2 * pad_h, problem.width + 2 * pad_w)
        if extent > MAX_INT32:
            found.append(Violation("padded_extent", f"H + 2*pad_h or W + 2*pad_w = {extent} exceeds 2^31 - 1: "
                                                    "the kernel computes sampling coordinates in 32 bits"))
        return found

    def run(self, problem, x, offset, mask, weight, bias):
        from .. import ops
        out = ops.deform_conv2d(x, offset, mask, weight, bias, problem.stride, problem.padding,
                                problem.dilation, problem.groups, problem.deformable_groups)
        # conv2d's rule: a channels_last input gives a channels_last output (the kernel writes NCHW).
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            out = out.contiguous(memory_format=torch.channels_last)
        return out
