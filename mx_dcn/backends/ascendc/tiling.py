"""The tiling of the AscendC kernels, mirrored in Python, and the platform facts it depends on.

`compute_tiling` is a line-by-line mirror of kernels_ascend/op_host/dcn_tiling.cpp. Why a mirror rather
than calling the C++ through ctypes: the backend's `violations()` must work where no compiler and no NPU
exist (`mx_dcn.explain(..., device="npu", soc=...)` on a laptop) and cost microseconds; the mirror is
tested field by field against the C++ function over a sweep of shapes (tests/test_ascend_tiling.py), so
it cannot drift silently.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch

from ...problem import Problem
from ...workspace import chunk_size

# --------------------------------------------------------------------------- platform facts

SOC_PREFIX = "Ascend910B"
# The UB a kernel may allocate: 192 KiB less the 256 B + 8 KiB AscendC reserves (asc-devkit
# docs/zh/guide/编程指南/高级编程/硬件实现/架构规格/NPU架构版本2201.md).
UB_BYTES = 192 * 1024 - 256 - 8 * 1024
# Vector (AIV) cores per SoC: two per AI core. Only the block split depends on it, not feasibility.
VECTOR_CORES = {"Ascend910B1": 48, "Ascend910B2": 48, "Ascend910B2C": 48, "Ascend910B3": 40, "Ascend910B4": 40}
DEFAULT_VECTOR_CORES = 40

# --------------------------------------------------------------------------- tiling (mirror of dcn_tiling.cpp)

IM2COL, COL2IM = 0, 1
KERNEL_NAMES = {IM2COL: "im2col", COL2IM: "col2im"}
TILING_FIELDS = ("n", "h", "w", "c", "ho", "wo", "kh", "kw", "strideH", "strideW", "padH", "padW",
                 "dilationH", "dilationW", "hasMask", "deterministic", "columnsType", "pixelStart", "pixelCount",
                 "blockDim",
                 "pixelsPerBlock", "pixelsRemainder", "tilePixels", "tileStride", "planLen", "subRows", "slots",
                 "marginY", "marginX", "winRows", "winCols", "bandRows", "scanPixels", "ubBytes")
SHAPE_FIELDS = ("n", "h", "w", "c", "ho", "wo", "kh", "kw", "strideH", "strideW", "padH", "padW",
                "dilationH", "dilationW", "hasMask", "deterministic", "columnsType", "pixelStart", "pixelCount")
# columnsType: the element type of the columns im2col writes (the cube's input).
COLUMNS_TYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
# Status codes and texts of mxdcn::TilingStatus / DcnTilingMessage.
TILING_MESSAGES = (
    "ok",
    "the channel count must be a positive multiple of 64",
    "nothing to compute (no output pixels)",
    "a size exceeds the kernel's 32-bit tiling fields",
    "H + 2*pad or W + 2*pad reaches 2^24: sample positions would not be exact in fp32",
    "more than 2040 channels: a vector repeat stride over channel rows (C/8 blocks) exceeds its 8-bit field",
    "one tile's buffers (or one row of the deterministic grad_x band) do not fit the Unified Buffer "
    "(192 KiB less what AscendC reserves: too many channels or kernel taps)",
    "the platform reports no vector cores",
    "more than 255 kernel taps: a repeat count over the taps exceeds 255",
    "(W - 1) * C / 8 exceeds 65535: the gap of a corner copy over an image row exceeds the 16-bit field",
    "the columns' element type must be float32, float16 or bfloat16",
)
_BLOCK, _REPEAT, _MAX_REPEAT, _MAX_STRIDE, _MAX_TILE_PIXELS = 32, 64, 255, 65535, 32
_U32_MAX, _EXACT_FLOAT_INT = 0xFFFFFFFF, 1 << 24
_MAX_SLOTS, _STAGE_BYTES, _ROWS_BYTES = 8, 8192, (20480, 8192)
_MARGINS = ((3, 4), (3, 3), (2, 3), (2, 2), (1, 2), (1, 1))


def _align(v: int, to: int) -> int:
    return (v + to - 1) // to * to


def _plan_arrays(kind: int) -> int:
    return 17 if kind == IM2COL else 25


def _set_tile(kind: int, d: Dict[str, int], tile: int, margin_y: int, margin_x: int, window: bool, band: int) -> None:
    """The tile fields that follow from T, the margins (a window if `window`) and the band (SetTile)."""
    taps = d["kh"] * d["kw"]
    d["tilePixels"] = tile
    d["tileStride"] = _align(tile, 8)
    d["scanPixels"] = tile if d["deterministic"] else 0
    d["planLen"] = _align(taps * d["tileStride"], _REPEAT)
    rows, most = tile * taps, min(_MAX_REPEAT, max(1, _ROWS_BYTES[kind] // (d["c"] * 4)))
    parts = (rows + most - 1) // most
    d["subRows"] = (rows + parts - 1) // parts
    d["slots"] = max(1, min(_MAX_SLOTS, _STAGE_BYTES // (4 * d["c"] * 4)))
    d["marginY"] = margin_y if window else 0
    d["marginX"] = margin_x if window else 0
    d["winRows"] = (d["kh"] - 1) * d["dilationH"] + 2 + 2 * margin_y if window else 0
    d["winCols"] = (tile - 1) * d["strideW"] + (d["kw"] - 1) * d["dilationW"] + 3 + 2 * margin_x if window else 0
    d["bandRows"] = band


def ub_bytes(kind: int, d: Dict[str, int]) -> int:
    """UB bytes the kernel allocates with the tile fields of `d` (mirror of DcnUbBytes)."""
    taps, c = d["kh"] * d["kw"], d["c"]
    params = (3 if d["hasMask"] else 2) * d["planLen"] * 4
    window = d["winRows"] * d["winCols"] * c * 4
    rows = d["subRows"] * c * 4
    total = (2 * params + _plan_arrays(kind) * d["planLen"] * 4 + 3 * _align(d["planLen"] // 8, _BLOCK)
             + 2 * window + 2 * d["slots"] * 4 * c * 4)
    if kind == IM2COL:
        total += (taps * d["tileStride"] * _BLOCK if d["hasMask"] else 0) + 2 * rows + (rows if d["columnsType"] else 0)
    else:
        total += 2 * rows + (4 * c + 32) * 4 + d["planLen"] * 8 * 4 + 4 * _BLOCK + 2 * params
        total += d["bandRows"] * d["w"] * c * 4 if d["deterministic"] else 2 * window
    return total


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
    if s["columnsType"] > 2:
        return 10, zero
    checks = [s[k] for k in SHAPE_FIELDS if k not in ("hasMask", "deterministic", "columnsType")]
    checks += [s["kh"] * s["kw"], s["pixelStart"] + s["pixelCount"], s["n"] * s["ho"] * s["wo"],
               s["ho"] * s["wo"] * 8, s["n"] * s["h"]]
    if any(v > _U32_MAX for v in checks):
        return 3, zero
    if s["h"] + 2 * s["padH"] >= _EXACT_FLOAT_INT or s["w"] + 2 * s["padW"] >= _EXACT_FLOAT_INT:
        return 4, zero
    taps = s["kh"] * s["kw"]
    if taps > _MAX_REPEAT:
        return 8, zero
    if s["c"] // 8 > _MAX_REPEAT:
        return 5, zero
    if (s["w"] - 1) * s["c"] // 8 > _MAX_STRIDE:
        return 9, zero
    d = dict(s, hasMask=int(bool(s["hasMask"])), deterministic=int(kind == COL2IM and bool(s["deterministic"])),
             columnsType=s["columnsType"] if kind == IM2COL else 0)
    block_dim = min(s["pixelCount"], core_num)
    d["blockDim"] = block_dim
    d["pixelsPerBlock"], d["pixelsRemainder"] = divmod(s["pixelCount"], block_dim)
    largest = d["pixelsPerBlock"] + (1 if d["pixelsRemainder"] else 0)
    first = max(1, min(_MAX_TILE_PIXELS, s["wo"], largest))
    owned, row_bytes = (s["n"] * s["h"] + block_dim - 1) // block_dim, s["w"] * s["c"] * 4
    whole = min(owned, ub // 2 // row_bytes)
    bands = ([owned, 1] if whole == owned and owned != 1 else [1]) if d["deterministic"] else [0]

    def tiles(smallest):
        tile = first
        while tile >= smallest:
            yield tile
            if tile == 1:
                break
            tile //= 2

    candidates = [(tile, my, mx, True) for my, mx in _MARGINS for tile in tiles(max(1, first // 4))]
    candidates += [(tile, 0, 0, False) for tile in tiles(1)]
    for band, (tile, margin_y, margin_x, window) in ((b, c) for b in bands for c in candidates):
        _set_tile(kind, d, tile, margin_y, margin_x, window, band)
        if ub_bytes(kind, d) <= ub:
            # UB left over: wider tiles for the deterministic walk, more staging slots per round, the band
            scan, plan, wide = d["scanPixels"], d["planLen"], min(_MAX_TILE_PIXELS, s["wo"])
            while d["deterministic"] and wide > scan:
                d["scanPixels"] = wide
                d["planLen"] = _align(taps * max(d["tileStride"], _align(wide, 8)), _REPEAT)
                if ub_bytes(kind, d) <= ub:
                    break
                d["scanPixels"], d["planLen"] = scan, plan
                wide //= 2
            while d["slots"] < _MAX_SLOTS:
                d["slots"] += 1
                if ub_bytes(kind, d) > ub:
                    d["slots"] -= 1
                    break
            if d["deterministic"]:
                d["bandRows"] = min(owned, d["bandRows"] + (ub - ub_bytes(kind, d)) // row_bytes)
            d["ubBytes"] = ub_bytes(kind, d)
            return 0, {name: d[name] for name in TILING_FIELDS}
    return 6, zero


def launch_shape(p: Problem, pixel_start: int, pixel_count: int, deterministic: bool = False,
                 columns=torch.float32) -> Tuple[int, ...]:
    """The 19 shape values of one launch (SHAPE_FIELDS order); `columns` the dtype of im2col's columns."""
    return (p.batch, p.height, p.width, p.in_channels, p.out_height, p.out_width, p.kernel_h, p.kernel_w,
            p.stride[0], p.stride[1], p.padding[0], p.padding[1], p.dilation[0], p.dilation[1],
            int(p.has_mask), int(deterministic), COLUMNS_TYPES[columns], pixel_start, pixel_count)


def call_tiling_failure(p: Problem, core_num: int, deterministic: bool, kernels=(IM2COL, COL2IM), chunks=None):
    """Why the launches of a call cannot be tiled, in words, or None when they can: the first and the
    last launch (the others are like the first) of each of `kernels`, im2col with the call's columns
    type, col2im in the mode the backward will run (`deterministic`: its grad x band must fit too);
    `chunks` the call's launches (default: launch_chunks(p) under the current workspace budget)."""
    columns = p.dtype if p.dtype in COLUMNS_TYPES else torch.float32
    chunks = launch_chunks(p) if chunks is None else chunks
    for kind in kernels:
        for start, count in sorted({chunks[0], chunks[-1]} if chunks else ()):   # an empty batch: none
            det = kind == COL2IM and deterministic
            status, _ = compute_tiling(kind, launch_shape(p, start, count, det, columns if kind == IM2COL else
                                                          torch.float32), core_num)
            if status:
                mode = " in its deterministic mode" if det else ""
                return f"the {KERNEL_NAMES[kind]} kernel{mode} cannot tile this call: {TILING_MESSAGES[status]}"
    return None


def pixel_chunk(p: Problem) -> int:
    """Output pixels per launch: the columns and grad columns of a chunk fit the workspace budget."""
    total = p.batch * p.out_height * p.out_width
    per_pixel = (2 * p.kernel_taps * p.in_channels + p.out_channels) * 4
    return chunk_size(total, per_pixel)


def launch_chunks(p: Problem):
    """(pixel_start, pixel_count) of every launch of a call, in order: whole images when one fits the
    budget (so the matrix products can write the NCHW output directly), else parts of one image."""
    plane = p.out_height * p.out_width
    total = p.batch * plane
    step = pixel_chunk(p)
    if step >= plane:
        step = step // plane * plane
    return [(start, min(step, total - start)) for start in range(0, total, step)]
