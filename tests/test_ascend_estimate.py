"""The AscendC model as an instrument: counters pinned on a case counted by hand, the block order,
the cost table (one source: sim/costs.h, printed in kernels_ascend/README.md), the estimate and its
command line (`mx-dcn bench --npu-estimate`)."""
import json
import os

import pytest
import torch

from mx_dcn.backends.ascendc import estimate, sim_library
from mx_dcn.backends.ascendc.algorithm import run_with_kernels
from mx_dcn.backends.ascendc.kernels import SimKernels
from mx_dcn.backends.ascendc.tiling import VECTOR_CORES
from mx_dcn.problem import describe
from mx_dcn.testing.cases import Case
from mx_dcn.testing.oracle import oracle_backward

from test_ascend_sim import assert_close
from test_ascend_support import sim, sim_library as built_library  # noqa: F401  (fixture)
from test_cli import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One image 2x2, 64 channels, a 1x1 kernel, zero offsets, mask of ones: 4 pixels, one block.
SMALL = (1, 2, 2, 64, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 4)


def _small_launches():
    kernels = SimKernels(built_library(), core_num=1)
    x = torch.randn(1, 2, 2, 64, generator=torch.Generator().manual_seed(0))
    offset, mask = torch.zeros(4, 1, 2), torch.ones(4, 1)
    kernels.im2col(SMALL, x, offset, mask, torch.empty(4, 1, 64))
    kernels.col2im(SMALL, x, offset, mask, torch.randn(4, 1, 64), torch.zeros_like(x), torch.empty(4, 1, 2),
                   torch.empty(4, 1))
    return [launch.counters[0] for launch in kernels.launches]


def test_counters_of_a_small_case_counted_by_hand():
    """Each pixel samples at its own integer position (zero offsets): weight 1 on corner (y, x), the
    others weight 0 but read when inside the 2x2 image. Valid corners per pixel (0,0), (0,1), (1,0),
    (1,1): 4, 2, 2, 1 (9 in all). One corner-row DataCopy per image row with a valid corner (2 bursts
    when both are valid): 2 + 2 + 1 + 1 = 6 copies, 9 bursts of 256 bytes = 2304 bytes. One tile of 4
    pixels: the offsets (32 bytes) and masks (16 -> 32 bytes) by DataCopyPad.

    im2col, per pixel: Duplicate + one Axpy per valid corner + Muls (1 repeat each, 64 floats):
    17 instructions; a 256-byte column store; 3 GetValue (dy, dx, mask). GM read 2304 + 64 = 2368,
    write 4 x 256 = 1024; MTE2 copies 6 + 2, MTE3 4. Flags: MTE2_S and S_MTE2 once (the tile), each
    queue (2 buffers, 4 pixels) 4 EnQue/DeQue pairs and 4 FreeTensor whose events the 3rd and 4th
    AllocTensor and, for the last two, the queue's end wait: MTE2_V, V_MTE2, V_MTE3, MTE3_V 4 each;
    18 in all. One PipeBarrier<PIPE_ALL> (TPipe's end).
    col2im, per pixel: the grad column (256 bytes) and the corners in; Muls per valid corner, 3
    Duplicate, 3 Axpy per valid corner, 3 Mul, 3 ReduceSum: 9 + 4 v = 72 instructions over the 4
    pixels, 72 x 64 elements; an atomic 256-byte add per valid corner (2304 bytes); V_S and S_V once;
    3 GetValue (sums) + 3 (offsets, mask) and 3 SetValue (grad offset dy, dx, grad mask). The tile's
    grad offsets (32 bytes) and grad masks (16 -> 32) go out by DataCopyPad after S_MTE3, then MTE3_S.
    Queues of 1 buffer: MTE2_V and V_MTE2 4 each for the grad column and for the corners, V_MTE3 and
    MTE3_V 4 for the grad x rows; 36 flags.
    Timeline: a vector instruction costs 8 + 1 cycle per repeat, a ReduceSum 2 x 8 + 7 x (1 + 1); the
    scalar unit 2 cycles per issued instruction (copies, vector ops, SetFlag, WaitFlag, the barrier)
    and 4 per GetValue / SetValue: im2col 66 x 2 + 12 x 4 = 180, col2im 168 x 2 + 36 x 4 = 480. MTE2 of
    im2col (one core: 32 bytes/cycle): 128 + 32/32 for each DataCopyPad (GM offset 0, 512-aligned), the
    corner copies at 70% of the rate (their GM offsets or burst pitch of 256 bytes are not 512-aligned):
    three of two bursts 128 + 512/22.4, three of one 128 + 256/22.4."""
    im2col, col2im = _small_launches()
    want_im2col = dict(gm_read_bytes=2368, gm_write_bytes=1024, atomic_bytes=0, mte2_copies=8, mte3_copies=4,
                       vec_instructions=17, vec_repeats=17, vec_elements=17 * 64, scalar_reads=12, scalar_writes=0,
                       set_flags=18, wait_flags=18, scalar_vector_waits=0, pipe_barriers=1, waits_MTE2_V=4,
                       waits_V_MTE2=4, waits_V_MTE3=4, waits_MTE3_V=4, waits_MTE2_S=1, waits_S_MTE2=1,
                       busy_v=17 * 9, busy_s=180, busy_mte2=2 * 129 + 3 * (128 + 512 / 22.4) + 3 * (128 + 256 / 22.4))
    want_col2im = dict(gm_read_bytes=4 * 256 + 2304 + 64, gm_write_bytes=64, atomic_bytes=2304, mte2_copies=12,
                       mte3_copies=11, vec_instructions=72, vec_repeats=72, vec_elements=72 * 64, scalar_reads=24,
                       scalar_writes=12, set_flags=36, wait_flags=36, scalar_vector_waits=8, pipe_barriers=1,
                       waits_MTE2_V=8, waits_V_MTE2=8, waits_V_MTE3=4, waits_MTE3_V=4, waits_MTE2_S=1,
                       waits_S_MTE2=1, waits_S_MTE3=1, waits_MTE3_S=1, waits_V_S=4, waits_S_V=4,
                       busy_v=60 * 9 + 12 * (16 + 14), busy_s=480)
    for got, want, kernel in ((im2col, want_im2col, "im2col"), (col2im, want_col2im, "col2im")):
        for name, value in want.items():
            assert got[name] == pytest.approx(value, rel=1e-12), f"{kernel} {name}: {got[name]} != {value}"
        # every wait kind not listed is zero; the block ends when its last pipe does
        assert all(got[k] == 0 for k in got if k.startswith("waits_") and k not in want), (kernel, got)
        assert got["cycles"] >= max(got["busy_s"], got["busy_v"], got["busy_mte2"], got["busy_mte3"])


# --------------------------------------------------------------------------- block order


def _backward(kernels, case):
    t = {k: (v.requires_grad_(True) if v is not None else None) for k, v in case.make_inputs(torch.float32).items()}
    p = describe(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], **case.args())
    out = run_with_kernels(p, t["x"], t["offset"], t["mask"], t["weight"], t["bias"], kernels)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(grad_out)
    return t, grad_out


def test_blocks_run_in_the_chosen_order_with_the_same_results_and_work():
    """Reversed and shuffled block orders give the oracle's results and the same per-block work.
    grad_x differs in its last bits from the ascending order's: col2im adds it atomically, so the
    order of float additions follows the block order (today's backward is not deterministic; a
    deterministic design must make these equal); grad offset and grad mask, written once per element,
    are bitwise equal."""
    case = Case("overlapping_samples", 1, 64, 6, 6, 8, padding=(1, 1))
    runs = {}
    for order, seed in (("ascending", 0), ("reversed", 0), ("shuffled", 3)):
        kernels = SimKernels(built_library(), core_num=7, block_order=order, seed=seed)
        t, grad_out = _backward(kernels, case)
        runs[order] = (kernels.launches, t["x"].grad.clone(), t["offset"].grad.clone(), t["mask"].grad.clone())
        want = oracle_backward(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], grad_out, **case.args())
        assert_close(t["x"].grad, want["x"], f"{order} grad x")
        assert_close(t["offset"].grad, want["offset"], f"{order} grad offset")
    ascending, reversed_, shuffled = (runs[o][0] for o in ("ascending", "reversed", "shuffled"))
    assert all(launch.block_order == tuple(range(7)) for launch in ascending)
    assert all(launch.block_order == tuple(reversed(range(7))) for launch in reversed_)
    assert all(sorted(launch.block_order) == list(range(7)) and launch.block_order != tuple(range(7))
               for launch in shuffled)
    for a, r in zip(ascending, reversed_):
        assert a.counters == r.counters
    assert not torch.equal(runs["ascending"][1], runs["reversed"][1])
    for o in ("reversed", "shuffled"):   # written once per element: independent of the order
        assert torch.equal(runs["ascending"][2], runs[o][2]) and torch.equal(runs["ascending"][3], runs[o][3])


def test_an_unknown_block_order_is_refused():
    with pytest.raises(ValueError, match="block_order: expected one of"):
        SimKernels(built_library(), block_order="backwards")


# --------------------------------------------------------------------------- the cost table


def test_readme_prints_the_cost_table_of_the_model(sim):
    table = sim.cost_table()
    names = [row["name"] for row in table]
    assert {"clock_hz", "hbm_bytes_per_s", "cube_fp32_macs_per_cycle", "launch_us", "sync_cycles"} <= set(names)
    assert all(row["source"] for row in table)
    readme = open(os.path.join(ROOT, "kernels_ascend", "README.md"), encoding="utf-8").read()
    assert estimate.cost_table_markdown(table) in readme, "kernels_ascend/README.md's cost table is out of date"
    assert {row["name"]: row["value"] for row in table}["vector_cores"] == VECTOR_CORES[estimate.SOC]


# --------------------------------------------------------------------------- the estimate


def test_the_estimate_shapes_are_the_benchmark_targets_and_the_bev_stages():
    from mx_dcn import bench

    targets = [(s["n"], s["c"], s["h"], s["w"], s["c_out"]) for s in map(bench.SHAPES.get, bench.TARGET_SHAPES)]
    assert list(estimate.ESTIMATE_SHAPES.values()) == targets + [(6, 256, 58, 100, 256), (6, 512, 29, 50, 512)]


def test_the_trace_holds_every_launch_of_both_passes():
    """On meta tensors: the forward launches im2col and one matmul per launch; the backward im2col,
    col2im and two matmuls per launch, plus the layout copies, zeroing and bias of the algorithm."""
    n, c, h, w, c_out = shape = (2, 64, 16, 16, 128)
    passes = estimate.trace_passes(shape)
    fwd, bwd = passes["forward"], passes["backward"]
    assert [k for k, _ in fwd["kernels"]] == ["im2col"]
    assert [k for k, _ in bwd["kernels"]] == ["im2col", "col2im"]
    pixels = n * h * w
    matmul_flops = 2 * pixels * 9 * c * c_out
    assert [f for name, _, f in fwd["ops"] if f] == [matmul_flops]
    assert [f for name, _, f in bwd["ops"] if f] == [matmul_flops, matmul_flops]
    x_bytes = n * c * h * w * 4
    assert ("clone", 2 * x_bytes, 0) in fwd["ops"]          # x to channels-last
    assert ("zeros_like", x_bytes, 0) in bwd["ops"]         # grad x zeroed before the atomic adds
    assert any(name == "add_" for name, _, _ in fwd["ops"])  # bias


def test_cli_npu_estimate_json_and_table(capsys):
    status, out, err = run_main(capsys, "bench", "--npu-estimate", "--shapes", "n1_c256_32x32", "--json")
    assert status == 0, err
    records = json.loads(out)
    assert [(r["shape"], r["pass"]) for r in records] == [([1, 256, 32, 32, 256], "forward"),
                                                         ([1, 256, 32, 32, 256], "backward")]
    for r in records:
        assert r["estimate_us"] > r["roofline_us"] > 0 and "ESTIMATE" in r["note"]
        assert r["estimate_us"] == pytest.approx(sum(k["estimate_us"] for k in r["launches"]))
        kernels = {k["kernel"] for k in r["launches"]}
        assert {"im2col", "matmul (cube)", "torch ops (vector)"} <= kernels
    col2im = next(k for k in records[1]["launches"] if k["kernel"] == "col2im")
    assert col2im["per_pixel"]["scalar_vector_waits"] > 0
    status, out, err = run_main(capsys, "bench", "--npu-estimate", "--shapes", "n1_c256_32x32")
    assert status == 0 and "ESTIMATE" in out and "fwd+bwd" in out and "roofline us" in out, out


@pytest.mark.parametrize("flag", [["--gemm"], ["--quick"], ["--repeats", "3"], ["--plot", "x.png"]])
def test_cli_npu_estimate_refuses_measurement_flags(capsys, flag):
    status, _, err = run_main(capsys, "bench", "--npu-estimate", *flag)
    assert status == 2 and "does not combine" in err, err


def test_cli_npu_estimate_unknown_shape(capsys):
    status, _, err = run_main(capsys, "bench", "--npu-estimate", "--shapes", "n2_c64_7x7")
    assert status == 2 and "n6_c512_29x50" in err, err


def test_cli_npu_estimate_without_a_model_library_says_why(capsys, monkeypatch, tmp_path):
    """No library and no sources to build it from (an installed wheel): exit 1 with the reason; a
    build that fails: exit 1 with the build's status. No traceback."""
    monkeypatch.setenv("MX_DCN_SIM_BUILD", str(tmp_path / "build"))
    monkeypatch.setattr(sim_library, "BUILD_SCRIPT", str(tmp_path / "no_such_script.sh"))
    status, out, err = run_main(capsys, "bench", "--npu-estimate", "--shapes", "n1_c256_32x32")
    assert status == 1 and "not built" in err and "no kernels_ascend sources" in err and "Traceback" not in err, err
    monkeypatch.undo()
    monkeypatch.setenv("MX_DCN_SIM_BUILD", str(tmp_path / "build"))
    monkeypatch.setenv("CXX", "false")
    status, out, err = run_main(capsys, "bench", "--npu-estimate", "--shapes", "n1_c256_32x32")
    assert status == 1 and "building the AscendC model library failed" in err and "Traceback" not in err, err
