"""mx_dcn.bench: the contract (SHAPES, measure, format_table, main) in a quick run, and the
torchvision comparison path (exercised with a stand-in module when torchvision is absent)."""
import os
import sys
import types

import pytest
import torch

from mx_dcn import bench, ops

pytestmark = pytest.mark.skipif(ops.load_error() is not None, reason=f"extension not built: {ops.load_error()}")

KEYS = {"shape", "dense_fwd_ms", "mxdcn_fwd_ms", "fwd_ratio", "dense_fwdbwd_ms", "mxdcn_fwdbwd_ms", "fwdbwd_ratio",
        "torchvision_fwd_ms", "torchvision_fwdbwd_ms", "speedup_fwd", "speedup_fwdbwd", "peak_extra_mb",
        "dense_fwd_faults", "mxdcn_fwd_faults"}


def test_shapes_cover_the_targets_plus_stride_and_dilation():
    assert set(bench.TARGET_SHAPES) <= set(bench.SHAPES)
    dims = {(s["n"], s["c"], s["h"], s["w"], s["c_out"]) for n, s in bench.SHAPES.items() if n in bench.TARGET_SHAPES}
    assert dims == {(2, 64, 64, 64, 64), (1, 256, 32, 32, 256), (6, 64, 64, 176, 64), (8, 128, 32, 32, 128)}
    assert any(s["stride"] == 2 for s in bench.SHAPES.values())
    assert any(s["dilation"] == 2 for s in bench.SHAPES.values())


def test_measure_quick_without_torchvision():
    seen = []
    rows = bench.measure(["s2_n2_c64_64x64"], repeats=1, include_torchvision=False, progress=seen.append)
    assert seen == ["s2_n2_c64_64x64"] and len(rows) == 1
    row = rows[0]
    assert set(row) == KEYS
    for key in ("dense_fwd_ms", "mxdcn_fwd_ms", "dense_fwdbwd_ms", "mxdcn_fwdbwd_ms", "peak_extra_mb"):
        assert row[key] > 0
    assert row["fwd_ratio"] == pytest.approx(row["mxdcn_fwd_ms"] / row["dense_fwd_ms"])
    assert row["fwdbwd_ratio"] == pytest.approx(row["mxdcn_fwdbwd_ms"] / row["dense_fwdbwd_ms"])
    assert row["torchvision_fwd_ms"] is None and row["speedup_fwd"] is None and row["speedup_fwdbwd"] is None
    if bench._minor_faults() is not None:  # counted on this platform
        assert row["dense_fwd_faults"] >= 0 and row["mxdcn_fwd_faults"] >= 0
    table = bench.format_table(rows)
    assert "(2,64,64,64,64) stride2" in table and "ratio" in table


def test_page_faults_are_counted_per_call():
    if bench._minor_faults() is None:
        pytest.skip("this platform does not count page faults")
    pages = 64

    def touch_fresh_pages():  # a fresh mapping, one write per 4 KiB page: at least `pages` faults
        import mmap
        with mmap.mmap(-1, pages * 4096) as m:
            for i in range(pages):
                m[i * 4096] = 1

    faults = [[], []]
    bench.timed_rounds([touch_fresh_pages, lambda: None], repeats=3, faults=faults)
    assert len(faults[0]) == 3 and min(faults[0]) >= pages
    assert len(faults[1]) == 3 and max(faults[1]) < pages


def test_ratios_are_medians_of_per_round_ratios():
    # Round 2 ran during a slow spell (both contenders 10x slower): the paired ratio ignores it, where
    # a ratio of medians (4 / 2 = 2.0) would not.
    ours, dense = [2.0, 40.0, 4.0], [1.0, 20.0, 2.0]
    assert bench.paired_ratio(ours, dense) == 2.0
    ours, dense = [3.0, 5.0, 4.0, 100.0], [1.0, 2.0, 2.0, 10.0]
    assert bench.paired_ratio(ours, dense) == pytest.approx((2.5 + 3.0) / 2)


def test_torchvision_path_with_a_stand_in(monkeypatch):
    """Where torchvision is importable its deform_conv2d is timed; here a stand-in with its
    signature (computing through mx_dcn's portable backend) checks the plumbing."""
    calls = []

    def deform_conv2d(input, offset, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), mask=None):
        import mx_dcn
        calls.append(tuple(input.shape))
        with mx_dcn.use_backend("portable"):
            return mx_dcn.modulated_deform_conv2d(input, offset, mask, weight, bias, stride, padding, dilation)

    tv, tv_ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
    tv_ops.deform_conv2d = deform_conv2d
    tv.ops = tv_ops
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.ops", tv_ops)
    row = bench.measure(["s2_n2_c64_64x64"], repeats=1)[0]
    assert calls and calls[0] == (2, 64, 64, 64)
    assert row["torchvision_fwd_ms"] > 0 and row["torchvision_fwdbwd_ms"] > 0
    assert row["speedup_fwd"] == pytest.approx(row["torchvision_fwd_ms"] / row["mxdcn_fwd_ms"])
    assert row["speedup_fwdbwd"] == pytest.approx(row["torchvision_fwdbwd_ms"] / row["mxdcn_fwdbwd_ms"])
    assert "-" not in bench.format_table([row]).splitlines()[2].split()[-3:]


def test_main_prints_the_table(capsys):
    assert bench.main(["--quick", "--shapes", "s2_n2_c64_64x64", "--no-torchvision"]) == 0
    out = capsys.readouterr().out
    assert "(2,64,64,64,64) stride2" in out and "dense fwd" in out


def test_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        bench.measure(["nope"], repeats=1)
    with pytest.raises(ValueError, match="repeats"):
        bench.measure(["s2_n2_c64_64x64"], repeats=0)


def test_gemm_rates_time_both_gemms_on_the_kernels_tiles():
    mod = ops.load()
    rows = bench.gemm_rates(["n2_c64_64x64", "n1_c256_32x32", "n2_c64_64x64"], repeats=2)
    # the tiles the kernel cuts these shapes into (equal tiles of at most ~1 MiB of columns, a multiple of
    # 8 of them); the repeated shape is timed once
    assert [(r["m"], r["k"], r["n"]) for r in rows] == [
        (mod.forward_tile_rows(2, 64, 64, 64, 64), 576, 64), (mod.forward_tile_rows(1, 256, 32, 32, 256), 2304, 256)]
    for r in rows:
        assert r["m"] * r["k"] * 4 <= 1 << 20
    assert 64 * 64 % rows[0]["m"] == 0 and 64 * 64 // rows[0]["m"] % 8 == 0
    has_own = mod.kernel_isa() == "avx512"
    if not os.environ.get("MX_DCN_CPU_ISA"):  # the set the kernel picked is the best this CPU has
        assert has_own == _cpu_has_avx512()
    for r in rows:
        assert r["blas_gflops"] > 0
        assert (r["own_gflops"] is not None) == has_own
        if has_own:
            assert r["own_gflops"] > 0 and r["own_over_blas"] == pytest.approx(r["own_gflops"] / r["blas_gflops"])
    table = bench.format_gemm_table(rows)
    assert f"{rows[0]['m']} x 576 by 576 x 64" in table and "the kernel uses: " + mod.kernel_gemm() in table


def _cpu_has_avx512():
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    return all(f" {f}" in flags for f in ("avx512f", "avx512vl", "avx512bw", "avx512dq"))


def test_gemm_bad_arguments():
    mod = ops.load()
    with pytest.raises(ValueError, match="expected which 'own' or 'blas', got 'fast'"):
        mod.gemm_seconds(8, 8, 8, "fast", 1)
    with pytest.raises(ValueError, match="M, N, K > 0"):
        mod.gemm_seconds(0, 8, 8, "blas", 1)
    with pytest.raises(ValueError, match="repeats > 0"):
        mod.gemm_seconds(8, 8, 8, "blas", 0)
    with pytest.raises(ValueError, match="shape"):
        bench.gemm_rates(["nope"])
    with pytest.raises(ValueError, match="repeats"):
        bench.gemm_rates(["n2_c64_64x64"], repeats=0)
    with pytest.raises(ValueError, match="divisible by the groups"):
        mod.forward_tile_rows(1, 6, 8, 8, 8, groups=4)
    with pytest.raises(SystemExit):
        bench.main(["--gemm", "--repeats", "0"])
