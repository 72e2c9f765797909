"""The AscendC kernel backend for Atlas A2 (kernels_ascend/).

Algorithm (the same on the device and in the tests): inputs go channels-last; the output pixels
(flattened N*Ho*Wo) are processed in chunks that fit the workspace budget. Forward, per chunk:
the im2col kernel samples columns (P, kh*kw, C_in) on the vector cores, then torch's matmul (the
cube unit through CANN on the device) multiplies them with the weight, per convolution group, and
adds the bias. Backward, per chunk: columns are recomputed for grad weight (matmul), grad columns
come from a matmul with the weight, and the col2im kernel turns them into grad x (atomic adds),
grad offset and grad mask.

The sampling kernels are supplied by a provider: `NpuKernels` calls the custom operators through
torch_npu (mx_dcn/csrc/npu), `SimKernels` runs the SAME kernel sources compiled against the CPU model
of the AscendC API (a test harness, see kernels_ascend/README.md) on CPU tensors through ctypes.

Constraints (checked before any launch, also for a declared target): Atlas A2 SoC (Ascend910B*);
C_in % 64 == 0; deformable_groups == 1; dtype float32, float16 or bfloat16 (computed in float32,
half types cast in and results cast back; float64 is refused rather than silently computed in
float32); and the kernels' tiling limits (UB size, 8-bit repeat counts, 16-bit strides, 32-bit
fields), evaluated by `compute_tiling`, a line-by-line mirror of
kernels_ascend/op_host/dcn_tiling.cpp.

Why a Python mirror of the C++ tiling rather than calling the C++ through ctypes: `violations()` must
work where no compiler and no NPU exist (`mx_dcn.explain(..., device="npu", soc=...)` on a laptop)
and cost microseconds; the mirror is tested field by field against the C++ function over a sweep
of shapes (tests/test_ascend_tiling.py), so it cannot drift silently.

Determinism: col2im adds grad x atomically across vector cores; under
torch.use_deterministic_algorithms(True) the backward raises (warn_only: warns), like torch's ops.

SoC rule: the SoC is `problem.soc` when declared, else the name torch_npu reports for the current
device. When neither exists (a declared "npu" target on a machine without one, without a SoC), the
call is reported with the rule "soc" as unknown: the kernels would only run on Atlas A2.
"""
from __future__ import annotations

import ctypes
import os
import threading
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..problem import Problem
from ..workspace import chunk_size
from .base import AVAILABLE, Availability, Backend, Violation, unavailable

# --------------------------------------------------------------------------- platform facts

SOC_PREFIX = "Ascend910B"
UB_BYTES = 192 * 1024
# Vector (AIV) cores per SoC: two per AI core. Only the block split depends on it, not feasibility.
VECTOR_CORES = {"Ascend910B1": 48, "Ascend910B2": 48, "Ascend910B2C": 48, "Ascend910B3": 40, "Ascend910B4": 40}
DEFAULT_VECTOR_CORES = 40

# --------------------------------------------------------------------------- tiling (mirror of dcn_tiling.cpp)

IM2COL, COL2IM = 0, 1
TILING_FIELDS = ("n", "h", "w", "c", "ho", "wo", "kh", "kw", "strideH", "strideW", "padH", "padW",
                 "dilationH", "dilationW", "hasMask", "pixelStart", "pixelCount", "blockDim",
                 "pixelsPerBlock", "pixelsRemainder", "tilePixels", "cTile", "ubBytes")
SHAPE_FIELDS = ("n", "h", "w", "c", "ho", "wo", "kh", "kw", "strideH", "strideW", "padH", "padW",
                "dilationH", "dilationW", "hasMask", "pixelStart", "pixelCount")
# Status codes and texts of mxdcn::TilingStatus / DcnTilingMessage.
TILING_MESSAGES = (
    "ok",
    "the channel count must be a positive multiple of 64",
    "nothing to compute (no output pixels)",
    "a size exceeds the kernel's 32-bit tiling fields",
    "H + 2*pad or W + 2*pad reaches 2^24: sample positions would not be exact in fp32",
    "the channel count makes a DataCopy gap exceed the 16-bit block-stride field (65535 blocks)",
    "one pixel's offsets and masks plus a 64-channel chunk do not fit the 192 KiB Unified Buffer "
    "(too many kernel taps)",
    "the platform reports no vector cores",
)
_BLOCK, _REPEAT, _MAX_REPEAT, _MAX_STRIDE, _MAX_TILE_PIXELS = 32, 64, 255, 65535, 64
_U32_MAX, _EXACT_FLOAT_INT = 0xFFFFFFFF, 1 << 24


def _align32(nbytes: int) -> int:
    return (nbytes + _BLOCK - 1) // _BLOCK * _BLOCK


def ub_bytes(kind: int, tile_pixels: int, c_tile: int, taps: int, has_mask: bool) -> int:
    """UB bytes the kernel allocates (mirror of DcnUbBytes)."""
    offset_bytes = _align32(tile_pixels * taps * 2 * 4)
    mask_bytes = _align32(tile_pixels * taps * 4) if has_mask else 0
    chunk = c_tile * 4
    if kind == IM2COL:
        total = offset_bytes + mask_bytes + 2 * 4 * chunk + 2 * chunk
    else:
        total = (2 * offset_bytes + 2 * mask_bytes + chunk + 4 * chunk + 4 * chunk + 3 * chunk + chunk
                 + _align32(c_tile // _REPEAT * 4) + 3 * _BLOCK)
    return min(total, _U32_MAX)


def compute_tiling(kind: int, shape: Sequence[int], core_num: int, ub: int = UB_BYTES) -> Tuple[int, Dict[str, int]]:
    """(status, fields) for a launch; `shape` in SHAPE_FIELDS order (mirror of ComputeDcnTiling).
    status 0 means tiled; otherwise TILING_MESSAGES[status] says why not and fields are zeros."""
    s = dict(zip(SHAPE_FIELDS, (int(v) for v in shape)))
    zero = {name: 0 for name in TILING_FIELDS}
    if core_num == 0:
        return 7, zero
    if s["c"] == 0 or s["c"] % _REPEAT:
        return 1, zero
    if s["pixelCount"] == 0 or s["n"] == 0:
        return 2, zero
    checks = [s[k] for k in SHAPE_FIELDS if k != "hasMask"]
    checks += [s["kh"] * s["kw"], s["pixelStart"] + s["pixelCount"], s["n"] * s["ho"] * s["wo"]]
    if any(v > _U32_MAX for v in checks):
        return 3, zero
    if s["h"] + 2 * s["padH"] >= _EXACT_FLOAT_INT or s["w"] + 2 * s["padW"] >= _EXACT_FLOAT_INT:
        return 4, zero
    taps, has_mask = s["kh"] * s["kw"], bool(s["hasMask"])
    c_tile = min(s["c"], _MAX_REPEAT * _REPEAT)
    while c_tile > _REPEAT and ub_bytes(kind, 1, c_tile, taps, has_mask) > ub:
        c_tile -= _REPEAT
    if ub_bytes(kind, 1, c_tile, taps, has_mask) > ub:
        return 6, zero
    if c_tile < s["c"] and (s["c"] - _REPEAT) * 4 // _BLOCK > _MAX_STRIDE:
        return 5, zero
    block_dim = min(s["pixelCount"], core_num)
    per_block, remainder = divmod(s["pixelCount"], block_dim)
    tile = min(per_block + (1 if remainder else 0), _MAX_TILE_PIXELS)
    while tile > 1 and ub_bytes(kind, tile, c_tile, taps, has_mask) > ub:
        tile -= 1
    fields = dict(s, hasMask=int(has_mask), blockDim=block_dim, pixelsPerBlock=per_block,
                  pixelsRemainder=remainder, tilePixels=tile, cTile=c_tile,
                  ubBytes=ub_bytes(kind, tile, c_tile, taps, has_mask))
    return 0, {name: fields[name] for name in TILING_FIELDS}


def launch_shape(p: Problem, pixel_start: int, pixel_count: int) -> Tuple[int, ...]:
    """The 17 shape values of one launch (SHAPE_FIELDS order)."""
    return (p.batch, p.height, p.width, p.in_channels, p.out_height, p.out_width, p.kernel_h, p.kernel_w,
            p.stride[0], p.stride[1], p.padding[0], p.padding[1], p.dilation[0], p.dilation[1],
            int(p.has_mask), pixel_start, pixel_count)


def pixel_chunk(p: Problem) -> int:
    """Output pixels per launch: the columns and grad columns of a chunk fit the workspace budget."""
    total = p.batch * p.out_height * p.out_width
    per_pixel = (2 * p.kernel_taps * p.in_channels + p.out_channels) * 4
    return chunk_size(total, per_pixel)


# --------------------------------------------------------------------------- kernel providers


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
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    build = os.environ.get("MX_DCN_SIM_BUILD", os.path.join(root, "kernels_ascend", "build_sim"))
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
        self.core_num = VECTOR_CORES.get(_device_soc() or "", DEFAULT_VECTOR_CORES)

    @staticmethod
    def _attrs(shape):
        s = dict(zip(SHAPE_FIELDS, shape))
        return ([s["kh"], s["kw"]], [s["strideH"], s["strideW"]], [s["padH"], s["padW"]],
                [s["dilationH"], s["dilationW"]], [s["ho"], s["wo"]], s["pixelStart"])

    def im2col(self, shape, x, offset, mask, columns) -> None:
        self.ops.im2col(x, offset, mask, columns, *self._attrs(shape))

    def col2im(self, shape, x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask) -> None:
        self.ops.col2im(x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask, *self._attrs(shape))


# --------------------------------------------------------------------------- the algorithm


def _weight_matrix(p: Problem, weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in/g, kh, kw) -> (g, kh*kw*C_in/g, C_out/g), rows ordered like the columns (tap, channel)."""
    g = p.groups
    w = weight.reshape(g, p.out_channels // g, p.in_channels // g, p.kernel_h, p.kernel_w)
    return w.permute(0, 3, 4, 2, 1).reshape(g, p.kernel_taps * (p.in_channels // g), p.out_channels // g)


def _group_columns(p: Problem, columns: torch.Tensor) -> torch.Tensor:
    """(P, K, C) -> (g, P, K*C/g)."""
    g, rows = p.groups, columns.shape[0]
    if g == 1:
        return columns.reshape(1, rows, -1)
    cols = columns.reshape(rows, p.kernel_taps, g, p.in_channels // g)
    return cols.permute(2, 0, 1, 3).reshape(g, rows, -1)


def _ungroup_columns(p: Problem, grouped: torch.Tensor) -> torch.Tensor:
    """(g, P, K*C/g) -> (P, K, C) contiguous."""
    g, rows = p.groups, grouped.shape[1]
    if g == 1:
        return grouped.reshape(rows, p.kernel_taps, p.in_channels).contiguous()
    cols = grouped.reshape(g, rows, p.kernel_taps, p.in_channels // g)
    return cols.permute(1, 2, 0, 3).reshape(rows, p.kernel_taps, p.in_channels).contiguous()


def _channels_last(p: Problem, x, offset, mask):
    pixels = p.batch * p.out_height * p.out_width
    x_nhwc = x.permute(0, 2, 3, 1).contiguous()
    off = offset.permute(0, 2, 3, 1).reshape(pixels, p.kernel_taps, 2).contiguous()
    msk = None if mask is None else mask.permute(0, 2, 3, 1).reshape(pixels, p.kernel_taps).contiguous()
    return x_nhwc, off, msk


def _chunks(p: Problem):
    total = p.batch * p.out_height * p.out_width
    step = pixel_chunk(p)
    return [(start, min(step, total - start)) for start in range(0, total, step)]


def _alert_not_deterministic() -> None:
    """As torch's own non-deterministic ops do under torch.use_deterministic_algorithms(True)."""
    message = ("mx_dcn ascendc backward: col2im adds grad_x atomically across vector cores, so the order of "
               "float additions varies from run to run; it has no deterministic implementation, but "
               "torch.use_deterministic_algorithms(True) is set (force the 'portable' backend, or pass "
               "warn_only=True to accept it)")
    if torch.is_deterministic_algorithms_warn_only_enabled():
        warnings.warn(message, UserWarning, stacklevel=3)
    else:
        raise RuntimeError(message)


class _AscendCFunction(torch.autograd.Function):
    """fp32 in, fp32 out; the kernels' provider does the sampling, torch.matmul the products."""

    @staticmethod
    def forward(ctx, x, offset, mask, weight, bias, problem: Problem, kernels: SamplingKernels):
        p = problem
        x_nhwc, off, msk = _channels_last(p, x, offset, mask)
        w_mat = _weight_matrix(p, weight)
        out = x.new_empty(p.batch * p.out_height * p.out_width, p.out_channels)
        for start, count in _chunks(p):
            columns = x.new_empty(count, p.kernel_taps, p.in_channels)
            kernels.im2col(launch_shape(p, start, count), x_nhwc, off[start:start + count],
                           None if msk is None else msk[start:start + count], columns)
            rows = torch.bmm(_group_columns(p, columns), w_mat)            # (g, count, C_out/g)
            out[start:start + count] = rows.permute(1, 0, 2).reshape(count, p.out_channels)
        if bias is not None:
            out += bias
        ctx.problem, ctx.kernels = p, kernels
        ctx.save_for_backward(x, offset, mask, weight)
        ctx.has_bias = bias is not None
        return out.reshape(p.batch, p.out_height, p.out_width, p.out_channels).permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def backward(ctx, grad_out):
        x, offset, mask, weight = ctx.saved_tensors
        p, kernels = ctx.problem, ctx.kernels
        need_x, need_off, need_mask, need_w, need_b = ctx.needs_input_grad[:5]
        need_sampling = need_x or need_off or (need_mask and mask is not None)
        if need_sampling and torch.are_deterministic_algorithms_enabled():
            _alert_not_deterministic()
        x_nhwc, off, msk = _channels_last(p, x, offset, mask)
        w_mat = _weight_matrix(p, weight)
        g = p.groups
        pixels = p.batch * p.out_height * p.out_width
        grad_rows = grad_out.permute(0, 2, 3, 1).reshape(pixels, g, p.out_channels // g)
        grad_x = torch.zeros_like(x_nhwc) if need_sampling else None
        grad_off = x.new_empty(pixels, p.kernel_taps, 2) if need_sampling else None
        grad_msk = x.new_empty(pixels, p.kernel_taps) if need_sampling and mask is not None else None
        grad_w = torch.zeros_like(w_mat) if need_w else None
        for start, count in _chunks(p):
            shape = launch_shape(p, start, count)
            go = grad_rows[start:start + count].permute(1, 0, 2)            # (g, count, C_out/g)
            chunk_mask = None if msk is None else msk[start:start + count]
            if need_w:
                columns = x.new_empty(count, p.kernel_taps, p.in_channels)
                kernels.im2col(shape, x_nhwc, off[start:start + count], chunk_mask, columns)
                grad_w += torch.bmm(_group_columns(p, columns).transpose(1, 2), go)
            if need_sampling:
                grad_columns = _ungroup_columns(p, torch.bmm(go, w_mat.transpose(1, 2)))
                kernels.col2im(shape, x_nhwc, off[start:start + count], chunk_mask, grad_columns, grad_x,
                               grad_off[start:start + count],
                               None if grad_msk is None else grad_msk[start:start + count])
        hw = (p.batch, p.out_height, p.out_width)
        gx = grad_x.permute(0, 3, 1, 2) if need_x else None
        goff = grad_off.reshape(*hw, 2 * p.kernel_taps).permute(0, 3, 1, 2) if need_off else None
        gmask = (grad_msk.reshape(*hw, p.kernel_taps).permute(0, 3, 1, 2)
                 if need_mask and grad_msk is not None else None)
        gw = None
        if need_w:
            gw = grad_w.reshape(g, p.kernel_h, p.kernel_w, p.in_channels // g, p.out_channels // g)
            gw = gw.permute(0, 4, 3, 1, 2).reshape(weight.shape)
        gb = grad_out.sum(dim=(0, 2, 3)) if need_b and ctx.has_bias else None
        return gx, goff, gmask, gw, gb, None, None


def run_with_kernels(problem: Problem, x, offset, mask, weight, bias, kernels: SamplingKernels) -> torch.Tensor:
    """The ascendc algorithm with a given kernel provider; differentiable. Half types are computed in
    float32 and the result cast back (autograd carries the casts)."""
    out_dtype = x.dtype
    f32 = torch.float32
    cast = [None if t is None else t.to(f32) for t in (x, offset, mask, weight, bias)]
    out = _AscendCFunction.apply(*cast, problem, kernels)
    return out.to(out_dtype)


# --------------------------------------------------------------------------- the backend

_soc_lock = threading.Lock()
_soc_cache: Dict[str, Optional[str]] = {}


def _device_soc() -> Optional[str]:
    """The SoC name torch_npu reports for the current NPU, or None (never raises)."""
    with _soc_lock:
        if "soc" not in _soc_cache:
            soc = None
            try:
                import torch_npu  # noqa: F401
                if torch.npu.is_available() and torch.npu.device_count() > 0:
                    soc = str(torch.npu.get_device_name(torch.npu.current_device()))
            except Exception:  # no torch_npu, no driver: unknown
                soc = None
            _soc_cache["soc"] = soc
        return _soc_cache["soc"]


def _custom_op_package() -> Optional[str]:
    """The installed mx_dcn custom-op package directory (with its aclnn library), or None."""
    roots = [r for r in os.environ.get("ASCEND_CUSTOM_OPP_PATH", "").split(":") if r]
    opp = os.environ.get("ASCEND_OPP_PATH")
    if opp:
        roots.append(os.path.join(opp, "vendors", "mx_dcn"))
    for root in roots:
        if os.path.exists(os.path.join(root, "op_api", "lib", "libcust_opapi.so")) and "mx_dcn" in root:
            return root
    return None


def is_atlas_a2(soc: str) -> bool:
    return soc.lower().startswith(SOC_PREFIX.lower())


class AscendCBackend(Backend):
    name = "ascendc"
    device_types = ("npu",)
    description = "AscendC im2col/col2im kernels for Atlas A2 (kernels_ascend) + CANN matmul"

    def __init__(self):
        self._kernels: Optional[NpuKernels] = None

    @staticmethod
    def _probe() -> Availability:
        missing = []
        try:
            import torch_npu  # noqa: F401
        except Exception as e:  # ImportError, or a broken CANN environment
            return unavailable(f"torch_npu is not importable ({type(e).__name__}: {e}); the custom op package "
                               "and the device cannot be checked without it")
        soc = _device_soc()
        if soc is None:
            missing.append("no NPU device is visible to torch_npu")
        elif not is_atlas_a2(soc):
            missing.append(f"the NPU is {soc}, not an Atlas A2 SoC ({SOC_PREFIX}*)")
        if _custom_op_package() is None:
            missing.append("the mx_dcn custom op package is not installed (no vendors/mx_dcn with "
                           "op_api/lib/libcust_opapi.so under ASCEND_CUSTOM_OPP_PATH or ASCEND_OPP_PATH; "
                           "see kernels_ascend/README.md)")
        try:
            import mx_dcn._npu  # noqa: F401
        except Exception as e:
            missing.append(f"the torch_npu glue mx_dcn._npu is not built ({type(e).__name__}: {e})")
        return unavailable("; ".join(missing)) if missing else AVAILABLE

    def violations(self, problem: Problem) -> List[Violation]:
        p = problem
        out: List[Violation] = []
        soc = p.soc or (_device_soc() if p.device_type == "npu" else None)
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
            out.append(Violation("dtype", "float64 is not supported: the kernels compute in float32 (float16 "
                                 "and bfloat16 are cast to float32 and back; float64 would silently lose precision)"))
        if out or p.batch == 0:
            return out
        return self._tiling_violations(p, VECTOR_CORES.get(soc or "", DEFAULT_VECTOR_CORES))

    @staticmethod
    def _tiling_violations(p: Problem, core_num: int) -> List[Violation]:
        """Tile the first and the last launch of the call for both kernels; report what does not fit."""
        chunks = _chunks(p)
        launches = {chunks[0], chunks[-1]}
        for kind, kernel in ((IM2COL, "im2col"), (COL2IM, "col2im")):
            for start, count in sorted(launches):
                status, _ = compute_tiling(kind, launch_shape(p, start, count), core_num)
                if status:
                    return [Violation("tiling", f"the {kernel} kernel cannot tile this call: "
                                                f"{TILING_MESSAGES[status]}")]
        return []

    def run(self, problem, x, offset, mask, weight, bias):
        if self._kernels is None:
            self._kernels = NpuKernels()
        return run_with_kernels(problem, x, offset, mask, weight, bias, self._kernels)
