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
    """(kind, shape, cores, ub) over channels, kernels, strides, masks, pixel counts, cores, UB sizes."""
    channels = (64, 320, 4096, 20480)
    kernels = ((1, 1), (3, 3), (5, 5), (3, 1), (7, 7))
    pixels = ((0, 1), (0, 47), (5, 48), (100, 49), (0, 1000), (7, 123457))
    cores = (1, 7, 40, 48)
    ubs = (UB_BYTES, 64 * 1024, 8 * 1024)
    for kind, c, (kh, kw), (start, count), core, ub, mask in itertools.product(
            (IM2COL, COL2IM), channels, kernels, pixels, cores, ubs, (0, 1)):
        shape = (3, 33, 35, c, 17, 18, kh, kw, 2, 2, 1, 1, 1, 2, mask, start, count)
        yield kind, shape, core, ub


def test_mirror_equals_cpp(sim):
    compared = 0
    for kind, shape, cores, ub in sweep():
        assert compute_tiling(kind, shape, cores, ub) == sim.tiling(kind, shape, cores, ub), (kind, shape, cores, ub)
        compared += 1
    # Shapes the tiling rejects agree too.
    rejected = [(IM2COL, (1, 4, 4, 96, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 16)),
                (COL2IM, (1, 200, 200, 64, 100, 100, 101, 101, 1, 1, 0, 0, 1, 1, 1, 0, 10)),
                (IM2COL, (1, 4, 4, 600000, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 16)),
                (IM2COL, (1, 1 << 24, 4, 64, 1 << 24, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 16)),
                (IM2COL, (1 << 20, 4096, 4096, 64, 4096, 4096, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 16)),
                (IM2COL, (1, 4, 4, 64, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0))]
    for kind, shape in rejected:
        want = sim.tiling(kind, shape, 48, UB_BYTES)
        assert want[0] != 0 and compute_tiling(kind, shape, 48) == want, shape
    assert compared > 5000


def test_sweep_respects_limits_and_covers_every_pixel():
    tiled = 0
    for kind, shape, cores, ub in sweep():
        status, t = compute_tiling(kind, shape, cores, ub)
        s = dict(zip(SHAPE_FIELDS, shape))
        if status:
            # Only genuinely untileable launches may be rejected: here, none in the sweep.
            pytest.fail(f"{shape} rejected: {TILING_MESSAGES[status]}")
        tiled += 1
        taps = s["kh"] * s["kw"]
        assert t["ubBytes"] == ub_bytes(kind, t["tilePixels"], t["cTile"], taps, bool(s["hasMask"])) <= ub
        assert t["cTile"] % 64 == 0 and 64 <= t["cTile"] <= min(s["c"], 255 * 64)     # repeats <= 255
        assert t["cTile"] == s["c"] or (s["c"] - 64) * 4 // 32 <= 65535                # DataCopy gap
        assert 1 <= t["tilePixels"] <= 64 and 1 <= t["blockDim"] <= cores
        # The kernel's block ranges, one after another: each starts where the previous ended and the
        # last ends at pixelCount, so every pixel is covered exactly once.
        end = 0
        for b in range(t["blockDim"]):
            begin = b * t["pixelsPerBlock"] + min(b, t["pixelsRemainder"])
            count = t["pixelsPerBlock"] + (1 if b < t["pixelsRemainder"] else 0)
            assert begin == end and count >= 1, f"{shape}: block {b} starts at {begin}, expected {end}"
            end = begin + count
        assert end == s["pixelCount"], f"{shape}: blocks cover {end} of {s['pixelCount']} pixels"
    assert tiled > 5000


@pytest.mark.parametrize("shape,status", [
    ((1, 4, 4, 96, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 16), 1),                      # C % 64
    ((1, 200, 200, 64, 100, 100, 101, 101, 1, 1, 0, 0, 1, 1, 1, 0, 10), 6),          # taps overfill UB
    ((1, 4, 4, 600000, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 16), 5),                  # 16-bit gap
    ((1, 1 << 24, 4, 64, 1 << 24, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 16), 4),          # fp32 coordinates
    ((1 << 20, 4096, 4096, 64, 4096, 4096, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 16), 3),    # 32-bit fields
])
def test_untileable_shapes_are_reported(shape, status):
    assert compute_tiling(COL2IM, shape, 48)[0] == status
    assert TILING_MESSAGES[status]
