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
from mx_dcn.backends.ascendc.tiling import SHAPE_FIELDS, VECTOR_CORES
from mx_dcn.problem import describe
from mx_dcn.testing.cases import Case
from mx_dcn.testing.oracle import oracle_backward

from test_ascend_sim import assert_close
from test_ascend_support import sim, sim_library as built_library  # noqa: F401  (fixture)
from test_cli import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One image 2x2, 64 channels, a 1x1 kernel, zero offsets, mask of ones: 4 pixels, one block.
SMALL = (1, 2, 2, 64, 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 4)


def _small_launches():
    kernels = SimKernels(built_library(), core_num=1)
    x = torch.randn(1, 2, 2, 64, generator=torch.Generator().manual_seed(0))
    offset, mask = torch.zeros(1, 2, 2, 2), torch.ones(1, 1, 2, 2)
    kernels.im2col(SMALL, x, offset, mask, torch.empty(4, 1, 64))
    kernels.col2im(SMALL, x, offset, mask, torch.randn(4, 1, 64), torch.zeros_like(x), torch.empty(1, 2, 2, 2),
                   torch.empty(1, 1, 2, 2))
    return [launch.counters[0] for launch in kernels.launches]


def test_counters_of_a_small_case_counted_by_hand():
    """The tiling (tests/test_ascend_tiling.py): tiles of 2 pixels (one output row each, 2 tiles),
    plan arrays of 64 floats (one 256-byte repeat), a window of 8 x 12 pixels cut to the virtual image
    [-1, 2] x [-1, 2] = 4 x 4, with zero borders; every sample (zero offset, at its own pixel) lies in it.

    Per tile, both kernels: MTE2 copies dy, dx, mask (DataCopyPad, one 8-byte burst each, counted as a
    32-byte block) and the window (2 rows of 2 pixels, 2 x 512 bytes) -- 4 copies, 1120 bytes; the window
    zeroed first (Duplicate of 16 x 64 floats: 16 repeats) with a V_MTE2 hand-off. The plan: 38 vector
    instructions of one repeat (coordinates 4, inside test 4 Compares + 3 And, 2 Select, 2 Cast,
    4 Sub, 4 Mul, window test 4 Compares + 4 And, offset 5, 2 Select) over 2012 elements (And counts
    4 uint16 words). Once per block: the tap constants (5 instructions of one repeat, 96 elements).
    im2col, per tile: Brcb of the masks (1 repeat, 64 elements); per sample 4 blend instructions (Muls
    + 3 Axpy, 64 floats); the mask multiply (1 Mul of 2 repeats); one store of the 2 rows (512 bytes).
    So 103 instructions, 135 repeats, 7576 elements; 5 GetValue per sample (code, 4 weights) = 20.
    col2im, per tile: the grad rows in (512 bytes: 5 MTE2 copies, 1632 bytes per tile); 4 Mul for mask
    * w; the dot slots zeroed (512 floats, 8 repeats) and the window's grad zeroed (16 repeats); per
    sample 4 Mul + 2 ReduceDataBlock (4 repeats, then 1 of 32 lanes) for D_q and 4 Axpy into the
    window's grad; 4 GatherMask (8 repeats, 2 cycles each); 19 instructions for the grad offsets and
    masks; out: 3 DataCopyPad (dy, dx, mask grads, 32 bytes each) and the window's grad (2 x 512 bytes,
    atomic). Plus 4 Duplicate of the gather patterns once: 185 instructions, 327 repeats; 20 GetValue
    (code, 4 mask * w per sample). Each GatherMask makes the scalar unit wait for the vector pipe.

    Flags: per tile V_S (plan ready) and S_V (plan read, waited by the next plan or the kernel end);
    the queues: EnQue/DeQue MTE2_V per tile and queue (params, window; col2im: grad rows), FreeTensor
    V_MTE2 waited at the kernel end (2 buffers each); the border zeroing V_MTE2; the output queues
    V_MTE3 / MTE3_V. Timeline: a vector instruction costs 8 + repeats cycles (GatherMask 2 per repeat);
    the scalar unit 2 cycles per issued instruction and 4 per GetValue. MTE2 of im2col (one core: 32
    bytes/cycle): 128 + bytes / 32 for the copies starting 512-byte aligned (dy and mask of tile 0,
    the windows: 2 bursts 512 bytes apart), bytes / 22.4 (70%) for the others; MTE3: two aligned 512-byte
    stores."""
    im2col, col2im = _small_launches()
    aligned, unaligned = 128 + 32 / 32, 128 + 32 / 22.4
    want_im2col = dict(gm_read_bytes=2240, gm_write_bytes=1024, atomic_bytes=0, mte2_copies=8, mte3_copies=2,
                       vec_instructions=103, vec_repeats=135, vec_elements=7576, scalar_reads=20, scalar_writes=0,
                       set_flags=18, wait_flags=18, scalar_vector_waits=4, pipe_barriers=1, waits_MTE2_V=4,
                       waits_V_MTE2=6, waits_V_MTE3=2, waits_MTE3_V=2, waits_V_S=2, waits_S_V=2,
                       busy_v=103 * 8 + 135, busy_s=(103 + 10 + 36 + 1) * 2 + 20 * 4,
                       busy_mte2=2 * aligned + 4 * unaligned + 2 * (128 + 1024 / 32), busy_mte3=2 * (128 + 512 / 32))
    want_col2im = dict(gm_read_bytes=3264, gm_write_bytes=192, atomic_bytes=2048, mte2_copies=10, mte3_copies=8,
                       vec_instructions=185, vec_repeats=327, vec_elements=19512, scalar_reads=20, scalar_writes=0,
                       set_flags=26, wait_flags=26, scalar_vector_waits=12, pipe_barriers=1, waits_MTE2_V=6,
                       waits_V_MTE2=8, waits_V_MTE3=4, waits_MTE3_V=4, waits_V_S=2, waits_S_V=2,
                       busy_v=185 * 8 + 327 + 4 * 2 * 8, busy_s=(185 + 18 + 52 + 1) * 2 + 20 * 4)
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
    order of float additions follows the block order (the atomic mode; the deterministic mode's
    bitwise equality is tested in test_ascend_sim.py); grad offset and grad mask, written once per element,
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
    """On meta tensors: the forward launches im2col and one matmul per launch (writing the NCHW output
    with the bias: baddbmm); the backward im2col, col2im and two matmuls per launch, plus the layout
    copies and zeroing of the algorithm -- not the channels-last x again (kept from the forward); the
    deterministic backward the same ops, col2im in its deterministic mode."""
    n, c, h, w, c_out = shape = (2, 64, 16, 16, 128)
    passes = estimate.trace_passes(shape)
    fwd, bwd = passes["forward"], passes["backward"]
    assert [k for k, _ in fwd["kernels"]] == ["im2col"]
    assert [k for k, _ in bwd["kernels"]] == ["im2col", "col2im"]
    det = passes["det_bwd"]
    assert det["ops"] == bwd["ops"] and [k for k, _ in det["kernels"]] == ["im2col", "col2im"]
    flag = SHAPE_FIELDS.index("deterministic")
    assert [s[flag] for k, s in bwd["kernels"] if k == "col2im"] == [0]
    assert [s[flag] for k, s in det["kernels"] if k == "col2im"] == [1]
    pixels = n * h * w
    matmul_flops = 2 * pixels * 9 * c * c_out
    assert [f for name, _, f in fwd["ops"] if f] == [matmul_flops]
    assert [f for name, _, f in bwd["ops"] if f] == [matmul_flops, matmul_flops]
    x_bytes = n * c * h * w * 4
    assert ("clone", 2 * x_bytes, 0) in fwd["ops"]          # x to channels-last
    assert ("clone", 2 * x_bytes, 0) not in bwd["ops"]      # ... once
    assert ("zeros_like", x_bytes, 0) in bwd["ops"]         # grad x zeroed before the atomic adds
    assert [name for name, _, _ in fwd["ops"]] == ["clone", "clone", "baddbmm"]   # x, weight, product + bias


def test_cli_npu_estimate_json_and_table(capsys):
    status, out, err = run_main(capsys, "bench", "--npu-estimate", "--shapes", "n1_c256_32x32", "--json")
    assert status == 0, err
    records = json.loads(out)
    assert [(r["shape"], r["pass"]) for r in records] == [([1, 256, 32, 32, 256], "forward"),
                                                         ([1, 256, 32, 32, 256], "backward"),
                                                         ([1, 256, 32, 32, 256], "det_bwd")]
    for r in records:
        assert r["estimate_us"] > r["roofline_us"] > 0 and "ESTIMATE" in r["note"]
        assert r["estimate_us"] == pytest.approx(sum(k["estimate_us"] for k in r["launches"]))
        kernels = {k["kernel"] for k in r["launches"]}
        assert {"im2col", "matmul (cube)", "torch ops (vector)"} <= kernels
    col2im = next(k for k in records[1]["launches"] if k["kernel"] == "col2im")
    assert col2im["per_pixel"]["scalar_vector_waits"] > 0
    det = next(k for k in records[2]["launches"] if k["kernel"] == "col2im")
    assert det["per_pixel"]["gm_bytes"] > 0 and records[2]["estimate_us"] > records[1]["estimate_us"]
    status, out, err = run_main(capsys, "bench", "--npu-estimate", "--shapes", "n1_c256_32x32")
    assert status == 0 and "ESTIMATE" in out and "fwd+bwd" in out and "roofline us" in out, out
    assert "deterministic backward:" in out and "over the atomic one" in out, out


def test_half_products_are_costed_at_the_cubes_half_rate(sim):
    """A product of float16 / bfloat16 operands is recorded as such and costed at the cube's half rate
    (16 x 16 x 16 MACs per cycle against 16 x 16 x 4 for float32, sim/costs.h)."""
    costs = estimate.Costs(sim.cost_table())
    full, half = estimate._torch_op(("bmm", 0, 1e12), costs), estimate._torch_op(("bmm:half", 0, 1e12), costs)
    assert full["roofline_s"] == pytest.approx(4 * half["roofline_s"])
    with estimate._OpTrace() as trace:
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            torch.bmm(torch.empty(2, 8, 16, device="meta", dtype=dtype), torch.empty(2, 16, 4, device="meta", dtype=dtype))
    assert [name for name, _, _ in trace.ops] == ["bmm", "bmm:half", "bmm:half"]
    assert {estimate._group(name) for name, _, _ in trace.ops} == {"matmul (cube)"}


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


def test_shapes_in_parallel_processes_give_the_records_of_one_process():
    """npu_estimate runs shapes in worker processes (spawned) by default; records and their order are
    those of the sequential run."""
    names = ["n2_c64_64x64", "n1_c256_32x32"]
    heard = []
    parallel = estimate.npu_estimate(names, library=built_library(), jobs=2, progress=heard.append)
    assert parallel == estimate.npu_estimate(names, library=built_library(), jobs=1)
    assert [r["name"] for r in parallel] == [n for n in names for _ in range(3)]
    assert sorted(heard) == sorted(f"{n} estimated" for n in names)
