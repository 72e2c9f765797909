"""Providers of the two sampling kernels: `NpuKernels` calls the custom operators through torch_npu
(mx_dcn/csrc/npu), `SimKernels` runs the SAME kernel sources compiled against the CPU model of the
AscendC API (a test harness, see kernels_ascend/README.md) on CPU tensors through ctypes."""
from __future__ import annotations

import ctypes
import os
from typing import Dict, List, Optional, Tuple

import torch

from ... import settings
from .device import device_soc
from .tiling import DEFAULT_VECTOR_CORES, SHAPE_FIELDS, TILING_FIELDS, UB_BYTES, VECTOR_CORES

class SamplingKernels:
    """The two sampling kernels on fp32 contiguous tensors (x (N,H,W,C); offset (P,K,2);
    mask (P,K) or None; columns (P,K,C)), for the launch described by `shape` (SHAPE_FIELDS)."""

    name = "?"
    core_num = DEFAULT_VECTOR_CORES

    def im2col(self, shape, x, offset, mask, columns) -> None:
        raise NotImplementedError

    def col2im(self, shape, x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask) -> None:
        """grad_x is accumulated into (the caller zeroes it); grad_offset and grad_mask are written."""
        raise NotImplementedError


def default_sim_library() -> str:
    """Where ci/ascend_sim.sh puts the model library ($MX_DCN_SIM_BUILD or kernels_ascend/build_sim)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    build = settings.get("MX_DCN_SIM_BUILD") or os.path.join(root, "kernels_ascend", "build_sim")
    return os.path.join(build, "libmxdcn_ascend_sim.so")


class SimError(RuntimeError):
    """The CPU model of the AscendC API stopped a kernel (a hardware rule was broken)."""


class SimKernels(SamplingKernels):
    """The kernel sources run on the CPU model of the AscendC API (a test harness, not a device).
    Tensors must be CPU float32 contiguous. Outputs are filled with NaN before each launch, so an
    element a kernel fails to write shows up."""

    name = "ascendc-model"

    def __init__(self, library: Optional[str] = None, core_num: int = 48, ub: int = UB_BYTES):
        path = library or default_sim_library()
        if not os.path.exists(path):
            raise FileNotFoundError(f"the AscendC model library {path} is not built; run ci/ascend_sim.sh --lib-only")
        self.lib = ctypes.CDLL(path)
        self.core_num, self.ub = int(core_num), int(ub)
        u64p, f32p, c = ctypes.POINTER(ctypes.c_uint64), ctypes.c_void_p, ctypes
        self.lib.mxdcn_sim_im2col.argtypes = [f32p] * 4 + [u64p, c.c_uint32, c.c_uint32, c.c_char_p, c.c_int]
        self.lib.mxdcn_sim_col2im.argtypes = [f32p] * 7 + [u64p, c.c_uint32, c.c_uint32, c.c_char_p, c.c_int]
        self.lib.mxdcn_sim_tiling.argtypes = [c.c_int, u64p, c.c_uint32, c.c_uint32,
                                              c.POINTER(c.c_uint32), c.c_char_p, c.c_int]
        self.lib.mxdcn_sim_selftest.argtypes = [c.c_int, c.c_char_p, c.c_int]
        self.lib.mxdcn_sim_last_ub_peak.restype = c.c_uint32
        self.lib.mxdcn_sim_last_block_dim.restype = c.c_uint32
        self.launches: List[Tuple[str, Tuple[int, ...], int, int]] = []   # (kernel, shape, blocks, UB peak)

    @staticmethod
    def _ptr(t: Optional[torch.Tensor]):
        if t is None:
            return None
        if t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous():
            raise ValueError(f"the AscendC model takes CPU float32 contiguous tensors, got {t.device} {t.dtype}")
        return ctypes.c_void_p(t.data_ptr())

    def _shape(self, shape):
        return (ctypes.c_uint64 * len(SHAPE_FIELDS))(*shape)

    def _check(self, status: int, err, kernel: str, shape) -> None:
        if status:
            raise SimError(f"{kernel}: {err.value.decode(errors='replace')}")
        self.launches.append((kernel, tuple(shape), int(self.lib.mxdcn_sim_last_block_dim()),
                              int(self.lib.mxdcn_sim_last_ub_peak())))

    def im2col(self, shape, x, offset, mask, columns) -> None:
        columns.fill_(float("nan"))
        err = ctypes.create_string_buffer(1024)
        status = self.lib.mxdcn_sim_im2col(self._ptr(x), self._ptr(offset), self._ptr(mask), self._ptr(columns),
                                           self._shape(shape), self.core_num, self.ub, err, len(err))
        self._check(status, err, "im2col", shape)

    def col2im(self, shape, x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask) -> None:
        grad_offset.fill_(float("nan"))
        if grad_mask is not None:
            grad_mask.fill_(float("nan"))
        err = ctypes.create_string_buffer(1024)
        status = self.lib.mxdcn_sim_col2im(self._ptr(x), self._ptr(offset), self._ptr(mask), self._ptr(grad_columns),
                                           self._ptr(grad_x), self._ptr(grad_offset), self._ptr(grad_mask),
                                           self._shape(shape), self.core_num, self.ub, err, len(err))
        self._check(status, err, "col2im", shape)

    def tiling(self, kind: int, shape, core_num: int, ub: int = UB_BYTES) -> Tuple[int, Dict[str, int]]:
        """The C++ tiling function itself (to test the Python mirror against)."""
        out = (ctypes.c_uint32 * len(TILING_FIELDS))()
        err = ctypes.create_string_buffer(256)
        status = self.lib.mxdcn_sim_tiling(kind, self._shape(shape), core_num, ub, out, err, len(err))
        fields = dict(zip(TILING_FIELDS, list(out))) if status == 0 else {n: 0 for n in TILING_FIELDS}
        return int(status), fields

    def selftest(self, toy: int) -> Optional[str]:
        """Runs model toy kernel `toy` (sim/selftest_kernels.cpp): None if it ran, else the model's message."""
        err = ctypes.create_string_buffer(1024)
        status = self.lib.mxdcn_sim_selftest(toy, err, len(err))
        return err.value.decode(errors="replace") if status else None


class NpuKernels(SamplingKernels):
    """The custom operators on the NPU, through the torch_npu glue (mx_dcn._npu, mx_dcn/csrc/npu)."""

    name = "ascendc"

    def __init__(self):
        import mx_dcn._npu  # noqa: F401  (registers torch.ops.mx_dcn_npu)
        self.ops = torch.ops.mx_dcn_npu
        self.core_num = VECTOR_CORES.get(device_soc() or "", DEFAULT_VECTOR_CORES)

    @staticmethod
    def _attrs(shape):
        s = dict(zip(SHAPE_FIELDS, shape))
        return ([s["kh"], s["kw"]], [s["strideH"], s["strideW"]], [s["padH"], s["padW"]],
                [s["dilationH"], s["dilationW"]], [s["ho"], s["wo"]], s["pixelStart"])

    def im2col(self, shape, x, offset, mask, columns) -> None:
        self.ops.im2col(x, offset, mask, columns, *self._attrs(shape))

    def col2im(self, shape, x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask) -> None:
        self.ops.col2im(x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask, *self._attrs(shape))
