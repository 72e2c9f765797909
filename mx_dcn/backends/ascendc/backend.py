"""The AscendC kernel backend for Atlas A2 (kernels_ascend/): its availability and its constraints.

Package layout: `tiling` (the kernels' tiling, mirrored from op_host, and the platform facts),
`kernels` (kernel providers: the NPU custom ops, or the CPU model of the AscendC API), `algorithm`
(channels-last launches + matmuls, the autograd function), `device` (what the NPU environment offers).

Constraints (checked before any launch, also for a declared target): Atlas A2 SoC (Ascend910B*);
C_in % 64 == 0; deformable_groups == 1; dtype float32, float16 or bfloat16 (sampled in float32; half
types feed the cube half-precision columns, see algorithm.py; float64 is refused rather than silently
computed in float32); and the kernels' tiling limits (UB size, 8-bit repeat counts and strides,
16-bit strides, 32-bit fields), evaluated by `tiling.compute_tiling` for the columns type and the
col2im mode (deterministic or not) the call will run.

SoC rule: the SoC is `problem.soc` when declared, else the name torch_npu reports for the current
device. When neither exists (a declared "npu" target on a machine without one, without a SoC), the
call is reported with the rule "soc" as unknown: the kernels would only run on Atlas A2.
"""
from __future__ import annotations

from typing import List, Optional

import torch

from ...problem import Problem
from ..base import Availability, Backend, Violation, missing_pieces
from .algorithm import deterministic_backward, run_with_kernels
from .device import device_soc, environment_pieces, is_atlas_a2
from .kernels import NpuKernels
from .tiling import DEFAULT_VECTOR_CORES, SOC_PREFIX, VECTOR_CORES, call_tiling_failure


class AscendCBackend(Backend):
    name = "ascendc"
    device_types = ("npu",)
    description = "AscendC im2col/col2im kernels for Atlas A2 (kernels_ascend) + CANN matmul"
    limits = ("soc: Atlas A2 (Ascend910B*) only; the kernels are built for ascend910b",
              "c_in_multiple_of_64: C_in % 64 == 0 (whole 256-byte rows of 64 fp32 channels)",
              "deformable_groups: deformable_groups == 1",
              "dtype: float32, float16 or bfloat16 (sampled in float32; half types feed the cube half-precision "
              "columns with float32 accumulation); float64 refused",
              "tiling: what the kernels' tiling cannot fit (UB size, 8-bit repeat counts and strides, 16-bit "
              "strides, 32-bit fields): more than 255 kernel taps, more than 2040 channels, (W - 1) * C > 524280, "
              "buffers beyond the Unified Buffer (192 KiB less 8.25 KiB AscendC reserves; e.g. 15x15 kernels over "
              "1984 channels)")
    deterministic = True
    determinism = ("col2im has a deterministic mode, used under torch.use_deterministic_algorithms(True) or "
                   "MX_DCN_DETERMINISTIC=1: grad_x by input rows, each owned by one vector core and summed in a "
                   "fixed order (bitwise equal whatever the order the cores run in; tested on the AscendC model "
                   "with the blocks reversed and shuffled); otherwise grad_x is added atomically")

    def __init__(self):
        self._kernels: Optional[NpuKernels] = None

    @staticmethod
    def _probe() -> Availability:
        """Available on evidence only: every piece device.py lists is present (else each missing one
        is named by its rule)."""
        return missing_pieces(environment_pieces())

    def violations(self, problem: Problem) -> List[Violation]:
        p = problem
        out: List[Violation] = []
        soc = p.soc or (device_soc() if p.device_type == "npu" else None)
        if soc is None:
            out.append(Violation("soc", "the SoC is unknown (no NPU visible and none declared); the kernels run on "
                                        "Atlas A2 only -- declare it, e.g. soc='Ascend910B2'"))
        elif not is_atlas_a2(soc):
            out.append(Violation("soc", f"{soc} is not an Atlas A2 SoC ({SOC_PREFIX}*); the kernels are built "
                                        "for ascend910b"))
        if p.in_channels % 64:
            out.append(Violation("c_in_multiple_of_64", f"C_in={p.in_channels} is not a multiple of 64 (the "
                                 "kernels move and compute whole 256-byte rows of 64 fp32 channels)"))
        if p.deformable_groups != 1:
            out.append(Violation("deformable_groups", f"deformable_groups={p.deformable_groups}; the kernels "
                                 "support 1"))
        if p.dtype == torch.float64:
            out.append(Violation("dtype", "float64 is not supported: the kernels sample in float32 and the "
                                 "cube multiplies float32 or half types; float64 would silently lose precision"))
        if p.unknown_sizes:
            out.append(Violation("unknown_sizes", "the call is traced for any batch and image size "
                                 "(torch.compile / torch.export); the kernels' tiling is computed for "
                                 "concrete sizes before launch, so they take eager calls only"))
        if out or p.batch == 0:
            return out
        return self._tiling_violations(p, VECTOR_CORES.get(soc or "", DEFAULT_VECTOR_CORES))

    @staticmethod
    def _tiling_violations(p: Problem, core_num: int) -> List[Violation]:
        """What of the call's launches does not tile, for the columns type and col2im mode it will run."""
        failure = call_tiling_failure(p, core_num, deterministic_backward())
        return [Violation("tiling", failure)] if failure else []

    def run(self, problem, x, offset, mask, weight, bias):
        if self._kernels is None:
            self._kernels = NpuKernels()
        return run_with_kernels(problem, x, offset, mask, weight, bias, self._kernels)

