"""Providers of the two sampling kernels: `NpuKernels` calls the custom operators through torch_npu
(mx_dcn/csrc/npu), `SimKernels` runs the SAME kernel sources compiled against the CPU model of the
AscendC API (a test harness, see kernels_ascend/README.md) on CPU tensors through ctypes, and reports
what every block did (the counters the Atlas A2 estimate is made of)."""
from __future__ import annotations

import ctypes
import os
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch

from . import toolkit
from .device import device_soc, use_op_package
from .sim_library import default_sim_library
from .tiling import COLUMNS_TYPES, DEFAULT_VECTOR_CORES, SHAPE_FIELDS, TILING_FIELDS, UB_BYTES, VECTOR_CORES

class SamplingKernels:
    """The two sampling kernels on fp32 contiguous tensors (x (N,H,W,C); offset (N,2K,Ho,Wo) with
    channels (k, [dy, dx]); mask (N,K,Ho,Wo) or None; columns (P,K,C) of the launch's P pixels), for
    the launch described by `shape` (SHAPE_FIELDS). col2im writes grad_offset and grad_mask (shaped
    like offset and mask) at the launch's pixels only."""

    name = "?"
    core_num = DEFAULT_VECTOR_CORES

    def im2col(self, shape, x, offset, mask, columns) -> None:
        raise NotImplementedError

    def col2im(self, shape, x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask) -> None:
        """grad_x is accumulated into (the caller zeroes it before the first launch); grad_offset and
        grad_mask are written at the launch's pixels. With `deterministic` set in `shape`, grad_x is
        summed in a fixed order (bitwise the same run after run)."""
        raise NotImplementedError


def launch_pixels(t: torch.Tensor, shape) -> List[torch.Tensor]:
    """Views of an (N, ch, Ho, Wo) tensor at the launch's pixels (one view per image it touches)."""
    s = dict(zip(SHAPE_FIELDS, shape))
    plane = s["ho"] * s["wo"]
    flat = t.view(t.shape[0], t.shape[1], plane)
    views, start, end = [], s["pixelStart"], s["pixelStart"] + s["pixelCount"]
    while start < end:
        image, first = divmod(start, plane)
        last = min(plane, first + end - start)
        views.append(flat[image, :, first:last])
        start += last - first
    return views


class SimError(RuntimeError):
    """The CPU model of the AscendC API stopped a kernel (a hardware rule was broken)."""


class Launch(NamedTuple):
    """One launch on the model: what ran, how it was split, and what every block did."""
    kernel: str                     # "im2col" | "col2im"
    shape: Tuple[int, ...]          # SHAPE_FIELDS values
    blocks: int                     # blockDim
    ub_peak: int                    # UB bytes the kernel's InitBuffer calls took
    counters: List[Dict[str, float]]   # per block index: counter name -> value (sim/include/sim/counters.h)
    block_order: Tuple[int, ...]    # the block indices in the order the model ran them


BLOCK_ORDERS = {"ascending": 0, "reversed": 1, "shuffled": 2}


class SimKernels(SamplingKernels):
    """The kernel sources run on the CPU model of the AscendC API (a test harness, not a device).
    Tensors must be CPU float32 contiguous. Outputs are filled with NaN before each launch, so an
    element a kernel fails to write shows up. `block_order` ("ascending", "reversed", "shuffled" with
    `seed`) is the order the model runs a launch's blocks in; on the device they run in parallel.
    Every launch is recorded in `launches` (with its counters) unless `record` is false."""

    name = "ascendc-model"

    def __init__(self, library: Optional[str] = None, core_num: int = 48, ub: int = UB_BYTES,
                 block_order: str = "ascending", seed: int = 0):
        path = library or default_sim_library()
        if not os.path.exists(path):
            raise FileNotFoundError(f"the AscendC model library {path} is not built; run ci/ascend_sim.sh --lib-only")
        if block_order not in BLOCK_ORDERS:
            raise ValueError(f"block_order: expected one of {sorted(BLOCK_ORDERS)}, got {block_order!r}")
        self.lib = ctypes.CDLL(path)
        self.core_num, self.ub = int(core_num), int(ub)
        self.block_order, self.seed = block_order, int(seed)
        self.record = True
        u64p, f32p, c = ctypes.POINTER(ctypes.c_uint64), ctypes.c_void_p, ctypes
        self.lib.mxdcn_sim_im2col.argtypes = [f32p] * 4 + [u64p, c.c_uint32, c.c_uint32, c.c_char_p, c.c_int]
        self.lib.mxdcn_sim_col2im.argtypes = [f32p] * 7 + [u64p, c.c_uint32, c.c_uint32, c.c_char_p, c.c_int]
        self.lib.mxdcn_sim_tiling.argtypes = [c.c_int, u64p, c.c_uint32, c.c_uint32,
                                              c.POINTER(c.c_uint32), c.c_char_p, c.c_int]
        self.lib.mxdcn_sim_selftest.argtypes = [c.c_int, c.c_int, c.c_char_p, c.c_int]
        for fn in ("mxdcn_sim_selftest_name", "mxdcn_sim_selftest_expect", "mxdcn_sim_cost_name",
                   "mxdcn_sim_cost_unit", "mxdcn_sim_cost_source"):
            getattr(self.lib, fn).argtypes = [c.c_int]
            getattr(self.lib, fn).restype = c.c_char_p
        self.lib.mxdcn_sim_cost_value.argtypes = [c.c_int]
        self.lib.mxdcn_sim_cost_value.restype = c.c_double
        self.lib.mxdcn_sim_counter_names.restype = c.c_char_p
        self.lib.mxdcn_sim_last_counters.argtypes = [c.POINTER(c.c_double), c.c_int]
        self.lib.mxdcn_sim_set_block_order.argtypes = [c.c_int, c.c_uint64]
        self.lib.mxdcn_sim_last_block_order.argtypes = [c.POINTER(c.c_uint32), c.c_int]
        self.lib.mxdcn_sim_last_ub_peak.restype = c.c_uint32
        self.lib.mxdcn_sim_last_block_dim.restype = c.c_uint32
        self.counter_names = self.lib.mxdcn_sim_counter_names().decode().strip(",").split(",")
        self.launches: List[Launch] = []

    @staticmethod
    def _ptr(t: Optional[torch.Tensor], dtypes=(torch.float32,)):
        if t is None:
            return None
        if t.device.type != "cpu" or t.dtype not in dtypes or not t.is_contiguous():
            raise ValueError(f"the AscendC model takes CPU {'/'.join(str(d) for d in dtypes)} contiguous tensors, "
                             f"got {t.device} {t.dtype}")
        return ctypes.c_void_p(t.data_ptr())

    def _shape(self, shape):
        return (ctypes.c_uint64 * len(SHAPE_FIELDS))(*shape)

    def _start(self) -> None:
        self.lib.mxdcn_sim_set_block_order(BLOCK_ORDERS[self.block_order], self.seed)

    def _check(self, status: int, err, kernel: str, shape) -> None:
        if status:
            raise SimError(f"{kernel}: {err.value.decode(errors='replace')}")
        if self.record:
            self.launches.append(self.last_launch(kernel, shape))

    def last_launch(self, kernel: str, shape) -> Launch:
        """The model's record of the launch that just ran."""
        blocks = int(self.lib.mxdcn_sim_last_block_dim())
        width = len(self.counter_names)
        values = (ctypes.c_double * (max(blocks, 1) * width))()
        n = self.lib.mxdcn_sim_last_counters(values, blocks)
        counters = [dict(zip(self.counter_names, values[b * width:(b + 1) * width])) for b in range(n)]
        order = (ctypes.c_uint32 * max(blocks, 1))()
        ran = self.lib.mxdcn_sim_last_block_order(order, blocks)
        return Launch(kernel, tuple(int(v) for v in shape), blocks, int(self.lib.mxdcn_sim_last_ub_peak()), counters,
                      tuple(order[:ran]))

    def im2col(self, shape, x, offset, mask, columns) -> None:
        columns.fill_(float("nan"))
        err = ctypes.create_string_buffer(2048)
        self._start()
        wanted = {code: dtype for dtype, code in COLUMNS_TYPES.items()}[dict(zip(SHAPE_FIELDS, shape))["columnsType"]]
        if columns.dtype != wanted:
            raise ValueError(f"columns: {columns.dtype}, the launch's columnsType says {wanted}")
        status = self.lib.mxdcn_sim_im2col(self._ptr(x), self._ptr(offset), self._ptr(mask),
                                           self._ptr(columns, tuple(COLUMNS_TYPES)),
                                           self._shape(shape), self.core_num, self.ub, err, len(err))
        self._check(status, err, "im2col", shape)

    def col2im(self, shape, x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask) -> None:
        for t in (grad_offset, grad_mask):
            for view in ([] if t is None else launch_pixels(t, shape)):
                view.fill_(float("nan"))
        err = ctypes.create_string_buffer(2048)
        self._start()
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

    def selftests(self) -> List[Tuple[str, str]]:
        """The model's rule toys (sim/selftest_kernels.cpp): (name, phrase the broken one's message has)."""
        return [(self.lib.mxdcn_sim_selftest_name(i).decode(), self.lib.mxdcn_sim_selftest_expect(i).decode())
                for i in range(self.lib.mxdcn_sim_selftest_count())]

    def selftest(self, toy: int, fixed: bool) -> Optional[str]:
        """Runs the broken (fixed=False) or fixed variant of rule toy `toy`: None if it ran, else the
        model's message."""
        err = ctypes.create_string_buffer(2048)
        status = self.lib.mxdcn_sim_selftest(toy, int(fixed), err, len(err))
        if status == 2:
            raise ValueError(f"toy: expected 0..{self.lib.mxdcn_sim_selftest_count() - 1}, got {toy}")
        return err.value.decode(errors="replace") if status else None

    def cost_table(self) -> List[Dict[str, object]]:
        """The figures of the Atlas A2 time estimate (sim/include/sim/costs.h): name, value, unit, source."""
        lib = self.lib
        return [dict(name=lib.mxdcn_sim_cost_name(i).decode(), value=float(lib.mxdcn_sim_cost_value(i)),
                     unit=lib.mxdcn_sim_cost_unit(i).decode(), source=lib.mxdcn_sim_cost_source(i).decode())
                for i in range(lib.mxdcn_sim_cost_count())]


class NpuKernels(SamplingKernels):
    """The custom operators on the NPU, through the torch_npu glue (mx_dcn._npu, mx_dcn/csrc/npu)."""

    name = "ascendc"

    def __init__(self):
        import mx_dcn._npu as glue  # registers torch.ops.mx_dcn_npu

        package = toolkit.find_op_package()
        if package is None:
            raise RuntimeError("the mx_dcn custom-op package is not installed (see `mx-dcn info`)")
        use_op_package(package)
        glue.load_op_api(os.path.join(package, "op_api", "lib", toolkit.OP_API_LIBRARY))
        self.ops = torch.ops.mx_dcn_npu
        self.core_num = VECTOR_CORES.get(device_soc() or "", DEFAULT_VECTOR_CORES)

    @staticmethod
    def _attrs(shape):
        s = dict(zip(SHAPE_FIELDS, shape))
        return ([s["kh"], s["kw"]], [s["strideH"], s["strideW"]], [s["padH"], s["padW"]],
                [s["dilationH"], s["dilationW"]], [s["ho"], s["wo"]], s["pixelStart"], s["pixelCount"])

    def im2col(self, shape, x, offset, mask, columns) -> None:
        self.ops.im2col(x, offset, mask, columns, *self._attrs(shape))

    def col2im(self, shape, x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask) -> None:
        deterministic = dict(zip(SHAPE_FIELDS, shape))["deterministic"]
        self.ops.col2im(x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask, *self._attrs(shape),
                        deterministic)
