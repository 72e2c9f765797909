"""The tiling of the AscendC kernels, mirrored in Python, and the platform facts it depends on.

`compute_tiling` is a line-by-line mirror of kernels_ascend/op_host/dcn_tiling.cpp. Why a mirror rather
than calling the C++ through ctypes: the backend's `violations()` must work where no compiler and no NPU
exist (`mx_dcn.explain(..., device="npu", soc=...)` on a laptop) and cost microseconds; the mirror is
tested field by field against the C++ function over a sweep of shapes (tests/test_ascend_tiling.py), so
it cannot drift silently.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

from ...problem import Problem
from ...workspace import chunk_size

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


def launch_chunks(p: Problem):
    """(pixel_start, pixel_count) of every launch of a call, in order."""
    total = p.batch * p.out_height * p.out_width
    step = pixel_chunk(p)
    return [(start, min(step, total - start)) for start in range(0, total, step)]
