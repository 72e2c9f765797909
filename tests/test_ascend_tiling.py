"""The tiling of the AscendC kernels: the Python mirror equals the C++ function (the one op_host
calls) field by field over a sweep; over the sweep every tile fits UB, the repeat and stride
limits hold, every output pixel is covered exactly once across blocks; shapes that cannot be tiled
are reported."""
import itertools

import pytest

from mx_dcn.backends.ascendc.tiling import (COL2IM, IM2COL, SHAPE_FIELDS, TILING_FIELDS, TILING_MESSAGES, UB_BYTES,
                                     compute_tiling, ub_bytes)

from test_ascend_support import sim  # noqa: F401  (fixture)


def sweep():
    """(kind, shape, cores, ub) over channels, kernels, strides, masks, determinism (col2im) or the
    columns' type (im2col), pixel counts, cores and UB sizes."""
    channels = (64, 320, 1024)
    kernels = ((1, 1), (3, 3), (5, 5), (3, 1), (7, 7))
    pixels = ((0, 1), (0, 47), (5, 48), (100, 49), (0, 1000), (7, 123457))
    cores = (1, 7, 40, 48)
    ubs = (UB_BYTES, 96 * 1024, 48 * 1024)
    for kind, c, (kh, kw), (start, count), core, ub, mask, det in itertools.product(
            (IM2COL, COL2IM), channels, kernels, pixels, cores, ubs, (0, 1), (0, 1)):
        # im2col has no deterministic mode; its runs of that loop take half-precision columns instead.
        det, columns = (0, det * (1 + mask)) if kind == IM2COL else (det, 0)
        shape = (3, 33, 35, c, 17, 18, kh, kw, 2, 2, 1, 1, 1, 2, mask, det, columns, start, count)
        yield kind, shape, core, ub


def test_mirror_equals_cpp(sim):
    compared = 0
    for kind, shape, cores, ub in sweep():
        assert compute_tiling(kind, shape, cores, ub) == sim.tiling(kind, shape, cores, ub), (kind, shape, cores, ub)
        compared += 1
    # Shapes the tiling rejects agree too.
    for shape, status in UNTILEABLE:
        for kind in (IM2COL, COL2IM):
            want = sim.tiling(kind, shape, 48, UB_BYTES)
            assert want[0] == status and compute_tiling(kind, shape, 48) == want, shape
    assert compared > 5000


def _smallest(kind, s):
    """The fields of the smallest tile the tiling can choose (one pixel, no window)."""
    taps = s["kh"] * s["kw"]
    most = min(255, max(1, (20480 if kind == IM2COL else 8192) // (4 * s["c"])))
    parts = (taps + most - 1) // most
    d = dict(s, tilePixels=1, tileStride=8, subRows=(taps + parts - 1) // parts, winRows=0, winCols=0, marginY=0,
             marginX=0)
    d["scanPixels"] = 1 if s["deterministic"] else 0
    d["planLen"] = (taps * 8 + 63) // 64 * 64
    d["slots"] = max(1, min(8, 8192 // (16 * s["c"])))
    d["bandRows"] = 1
    return d


def test_sweep_respects_limits_and_covers_every_pixel():
    tiled = 0
    for kind, shape, cores, ub in sweep():
        status, t = compute_tiling(kind, shape, cores, ub)
        s = dict(zip(SHAPE_FIELDS, shape))
        taps = s["kh"] * s["kw"]
        if status:
            # Only a genuinely full UB may reject a launch of the sweep: not even one pixel without a
            # window fits (e.g. a 7x7 kernel over 320 channels with the deterministic band).
            assert TILING_MESSAGES[status].startswith("one tile's buffers"), (shape, ub)
            assert ub_bytes(kind, _smallest(kind, dict(s, deterministic=int(kind == COL2IM and s["deterministic"])))) > ub
            continue
        tiled += 1
        assert t["ubBytes"] == ub_bytes(kind, t) <= ub
        assert 1 <= t["tilePixels"] <= min(32, s["wo"]) and t["tileStride"] == (t["tilePixels"] + 7) // 8 * 8
        assert t["planLen"] % 64 == 0 and t["planLen"] >= taps * t["tileStride"]
        assert 1 <= t["subRows"] <= min(255, t["tilePixels"] * taps)                       # repeats over rows
        assert 1 <= t["slots"] <= 8
        assert s["c"] // 8 <= 255 and (s["w"] - 1) * s["c"] // 8 <= 65535                  # strides
        if t["winRows"]:   # the window spans the tile's footprint plus its margins (+1 column: alignment)
            assert t["winRows"] == (s["kh"] - 1) * s["dilationH"] + 2 + 2 * t["marginY"] and t["marginY"] >= 1
            assert t["winCols"] == ((t["tilePixels"] - 1) * s["strideW"] + (s["kw"] - 1) * s["dilationW"] + 3
                                    + 2 * t["marginX"])
        assert (t["bandRows"] >= 1) == bool(t["deterministic"]) and t["deterministic"] <= (kind == COL2IM)
        assert 1 <= t["blockDim"] <= cores
        # The kernel's block ranges, one after another: each starts where the previous ended and the
        # last ends at pixelCount, so every pixel is covered exactly once.
        end = 0
        for b in range(t["blockDim"]):
            begin = b * t["pixelsPerBlock"] + min(b, t["pixelsRemainder"])
            count = t["pixelsPerBlock"] + (1 if b < t["pixelsRemainder"] else 0)
            assert begin == end and count >= 1, f"{shape}: block {b} starts at {begin}, expected {end}"
            end = begin + count
        assert end == s["pixelCount"], f"{shape}: blocks cover {end} of {s['pixelCount']} pixels"
    assert tiled > 3000


def test_windows_are_used_where_they_fit():
    """C = 64, 3x3: a window with the widest margins; C = 512 falls back to fetching every sample."""
    narrow = compute_tiling(IM2COL, (2, 64, 64, 64, 64, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 8192), 48)[1]
    assert (narrow["marginY"], narrow["marginX"]) == (3, 4) and narrow["winRows"] == 10
    wide = compute_tiling(IM2COL, (6, 29, 50, 512, 29, 50, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 8700), 48)[1]
    assert wide["winRows"] == 0 and wide["slots"] > 8192 // (16 * 512)   # the UB left over: more slots


# (shape, status): each limit the tiling reports, by its status code.
UNTILEABLE = [
    ((1, 4, 4, 96, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 16), 1),                     # C % 64
    ((1, 200, 200, 64, 100, 100, 101, 101, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 10), 8),         # more than 255 taps
    ((1, 4, 4, 2048, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 16), 5),                   # C / 8 > 255
    ((1, 16, 16, 1984, 2, 2, 15, 15, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 4), 6),                # plan + rows overfill UB
    ((1, 4, 5000, 128, 4, 5000, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 16), 9),              # (W - 1) * C / 8 > 65535
    ((1, 1 << 24, 4, 64, 1 << 24, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 16), 4),         # fp32 coordinates
    ((1 << 20, 4096, 4096, 64, 4096, 4096, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 16), 3),   # 32-bit fields
    ((1, 4, 4, 64, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0), 2),                      # no pixels
    ((1, 4, 4, 64, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 3, 0, 16), 10),                    # columns' type
]


@pytest.mark.parametrize("shape,status", UNTILEABLE)
def test_untileable_shapes_are_reported(shape, status):
    assert compute_tiling(COL2IM, shape, 48)[0] == status
    assert TILING_MESSAGES[status]


def test_deterministic_band_that_does_not_fit_is_reported():
    """One input row of the deterministic grad_x (W * C floats) must fit half the UB."""
    shape = (1, 4, 1024, 128, 4, 1024, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 16)
    assert compute_tiling(COL2IM, shape, 48)[0] == 6
    assert compute_tiling(COL2IM, shape[:15] + (0,) + shape[16:], 48)[0] == 0
