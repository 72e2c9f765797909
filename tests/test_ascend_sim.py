"""The AscendC kernel sources, run on the CPU model of the AscendC API through the exact Python
algorithm of the ascendc backend, against the float64 oracle (forward and every gradient); and the
model's own rules."""
import pytest
import torch

from mx_dcn.backends.ascendc.algorithm import run_with_kernels
from mx_dcn.backends.ascendc.kernels import SimError, SimKernels
from mx_dcn.backends.ascendc.tiling import (COL2IM, COLUMNS_TYPES, IM2COL, SHAPE_FIELDS, UB_BYTES, compute_tiling,
                                           launch_chunks, launch_shape)
from mx_dcn.problem import describe
from mx_dcn.testing.cases import CASES as SHARED_CASES
from mx_dcn.testing.cases import TOLERANCES, Case
from mx_dcn.testing.oracle import oracle_backward, oracle_forward
from mx_dcn.workspace import workspace_budget

from test_ascend_support import sim, sim_library  # noqa: F401  (fixture)

# Cases meeting the kernels' constraints (C_in % 64 == 0, dg == 1), with the number of vector cores
# to split them over; most splits are uneven (pixels % cores != 0).
CASES = [
    (Case("k3_s2_p2_d2_c64", 2, 64, 9, 11, 32, stride=(2, 2), padding=(2, 2), dilation=(2, 2)), 7),
    (Case("k1_p0_c128", 2, 128, 7, 5, 16, kh=1, kw=1, padding=(0, 0)), 5),
    (Case("k5_p2_c64", 1, 64, 9, 7, 8, kh=5, kw=5, padding=(2, 2)), 48),
    (Case("k3_p0_offsets_outside", 2, 64, 7, 9, 8, padding=(0, 0), offsets="outside"), 3),
    (Case("k3_offsets_integer", 1, 64, 7, 7, 8, offsets="integer"), 4),
    (Case("mask_zeros_groups2_c128", 2, 128, 5, 7, 16, groups=2, mask_kind="zeros"), 7),
    (Case("v1_no_mask_no_bias", 2, 64, 7, 9, 8, mask=False, bias=False), 6),
    (Case("s21_p02_d21_k3x1", 1, 64, 11, 9, 8, kh=3, kw=1, stride=(2, 1), padding=(0, 2), dilation=(2, 1)), 7),
    (Case("zero_offsets_single_core", 1, 64, 5, 5, 8, offsets="zero"), 1),
]


def assert_close(got, want, what, rtol=1e-4):
    want = torch.as_tensor(want, dtype=torch.float64)
    err = float((got.detach().double() - want).abs().max()) if want.numel() else 0.0
    allowed = rtol * (1.0 + float(want.abs().max()) if want.numel() else 1.0)
    assert err <= allowed, f"{what}: max error {err:.3e} > {allowed:.3e}"


def run_case(case: Case, kernels: SimKernels, seed: int = 0, dtype=torch.float32):
    inputs = case.make_inputs(dtype, seed=seed)
    leaves = {k: (v.requires_grad_(True) if v is not None else None) for k, v in inputs.items()}
    p = describe(leaves["x"], leaves["offset"], leaves["mask"], leaves["weight"], leaves["bias"], **case.args())
    out = run_with_kernels(p, leaves["x"], leaves["offset"], leaves["mask"], leaves["weight"], leaves["bias"], kernels)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    out.backward(grad_out.to(out.dtype))
    return leaves, out, grad_out, p


@pytest.mark.parametrize("case,cores", CASES, ids=[c.name for c, _ in CASES])
def test_kernels_match_oracle(case, cores):
    kernels = SimKernels(sim_library(), core_num=cores)
    leaves, out, grad_out, p = run_case(case, kernels)
    args = case.args()
    want = oracle_forward(leaves["x"], leaves["offset"], leaves["mask"], leaves["weight"], leaves["bias"], **args)
    assert_close(out, want, f"{case.name} forward")
    grads = oracle_backward(leaves["x"], leaves["offset"], leaves["mask"], leaves["weight"], leaves["bias"],
                            grad_out, **args)
    for name in ("x", "offset", "mask", "weight", "bias"):
        if leaves[name] is None:
            continue
        assert leaves[name].grad is not None, f"{case.name}: no gradient for {name}"
        assert_close(leaves[name].grad, grads[name], f"{case.name} grad {name}")

    # The launches really ran on several blocks, split as the tiling says, within the UB it predicts.
    pixels = case.n * case.out_hw[0] * case.out_hw[1]
    assert {launch.kernel for launch in kernels.launches} == {"im2col", "col2im"}
    for kernel, shape, blocks, ub_peak, *_ in kernels.launches:
        kind = IM2COL if kernel == "im2col" else COL2IM
        status, tiling = compute_tiling(kind, shape, cores)
        assert status == 0
        assert blocks == tiling["blockDim"] == min(cores, pixels)
        assert ub_peak == tiling["ubBytes"] <= UB_BYTES == 192 * 1024 - 256 - 8 * 1024, (kernel, ub_peak)


def _accepted_by_ascendc(case: Case) -> bool:
    import mx_dcn

    t = case.make_inputs(torch.float32, device="meta")
    p = describe(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], **case.args(), device="npu", soc="Ascend910B2")
    return not mx_dcn.get_backend("ascendc").violations(p)


SHARED = [c for c in SHARED_CASES if _accepted_by_ascendc(c)]


@pytest.mark.parametrize("case", SHARED, ids=[c.name for c in SHARED])
def test_shared_case_suite_runs_clean_on_the_model(case):
    """Every case of the shared suite (mx_dcn/testing/cases.py) the ascendc backend accepts runs on the
    strict model -- blocks reversed, for good measure -- and matches the float64 oracle."""
    kernels = SimKernels(sim_library(), core_num=7, block_order="reversed")
    leaves, out, grad_out, p = run_case(case, kernels)
    args = case.args()
    want = oracle_forward(leaves["x"], leaves["offset"], leaves["mask"], leaves["weight"], leaves["bias"], **args)
    assert_close(out, want, f"{case.name} forward")
    grads = oracle_backward(leaves["x"], leaves["offset"], leaves["mask"], leaves["weight"], leaves["bias"],
                            grad_out, **args)
    for name in ("x", "offset", "mask", "weight", "bias"):
        if leaves[name] is not None:
            assert_close(leaves[name].grad, grads[name], f"{case.name} grad {name}")
    if case.n:
        assert {launch.kernel for launch in kernels.launches} == {"im2col", "col2im"}


def test_the_shared_suite_has_ascendc_cases():
    assert {c.name for c in SHARED} >= {"c256_stride2_pad0_dil2", "c64_groups2_bias_maskzeros"}


def test_some_splits_are_uneven():
    uneven = [c.name for c, cores in CASES if (c.n * c.out_hw[0] * c.out_hw[1]) % cores]
    assert len(uneven) >= 5, uneven


def _check_against_oracle(case, leaves, out, grad_out, what):
    args = case.args()
    want = oracle_forward(leaves["x"], leaves["offset"], leaves["mask"], leaves["weight"], leaves["bias"], **args)
    assert_close(out, want, f"{what} forward")
    grads = oracle_backward(leaves["x"], leaves["offset"], leaves["mask"], leaves["weight"], leaves["bias"],
                            grad_out, **args)
    for name in ("x", "offset", "mask", "weight", "bias"):
        if leaves[name] is not None:
            assert_close(leaves[name].grad, grads[name], f"{what} grad {name}")


@pytest.mark.parametrize("ub,window", [(UB_BYTES, True), (64 * 1024, False)], ids=["windows", "no_window"])
def test_several_launches_windows_and_fetched_samples(ub, window):
    """A small workspace budget splits the pixels into several launches. With the full UB the tiles
    read windows of x (and offsets pushing samples outside them fetch their corners on their own);
    with a small UB there is no window and every sample is fetched -- results unchanged."""
    case = Case("chunked", 2, 128, 10, 12, 8, padding=(1, 1), offsets="outside", mask_kind="zeros")
    kernels = SimKernels(sim_library(), core_num=5, ub=ub)
    with workspace_budget(1024 * 1024):
        leaves, out, grad_out, p = run_case(case, kernels, seed=3)
    starts = sorted({launch.shape[SHAPE_FIELDS.index("pixelStart")] for launch in kernels.launches})
    assert len(starts) >= 2, "expected several launches"
    windows = {compute_tiling(IM2COL if kernel == "im2col" else COL2IM, shape, 5, ub)[1]["winRows"] > 0
               for kernel, shape, *_ in kernels.launches}
    assert windows == {window}, windows
    _check_against_oracle(case, leaves, out, grad_out, "chunked")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_half_inputs_feed_the_cube_half_precision_columns(dtype):
    """float16 / bfloat16 inputs: im2col samples in float32 and writes its columns in the inputs' type
    (the launches say so); the products run in that type with float32 accumulation; forward and every
    gradient match the float64 oracle within the half tolerances (mx_dcn.testing.cases.TOLERANCES), the
    results in the inputs' type."""
    case = Case("half", 2, 128, 9, 11, 16, padding=(1, 1), offsets="outside")
    kernels = SimKernels(sim_library(), core_num=5)
    leaves, out, grad_out, p = run_case(case, kernels, dtype=dtype)
    assert out.dtype == dtype and all(leaves[n].grad.dtype == dtype for n in ("x", "offset", "mask", "weight", "bias"))
    columns = {launch.shape[SHAPE_FIELDS.index("columnsType")] for launch in kernels.launches if launch.kernel == "im2col"}
    assert columns == {COLUMNS_TYPES[dtype]}
    rtol, atol = TOLERANCES[dtype]
    args = case.args()
    want = oracle_forward(leaves["x"], leaves["offset"], leaves["mask"], leaves["weight"], leaves["bias"], **args)
    grads = oracle_backward(leaves["x"], leaves["offset"], leaves["mask"], leaves["weight"], leaves["bias"],
                            grad_out, **args)
    for got, ref, what in [(out, want, "forward")] + [(leaves[n].grad, grads[n], f"grad {n}")
                                                    for n in ("x", "offset", "mask", "weight", "bias")]:
        ref = torch.as_tensor(ref, dtype=torch.float64)
        err = float((got.detach().double() - ref).abs().max())
        assert err <= atol + rtol * float(ref.abs().max()), f"{dtype} {what}: max error {err:.3e}"


def test_columns_are_rounded_to_half_once():
    """The half columns are exactly the float32 columns rounded to the type (round to nearest even)."""
    case = Case("round", 1, 64, 7, 9, 8, padding=(1, 1))
    t = case.make_inputs(torch.float32)
    p = describe(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], **case.args())
    kernels = SimKernels(sim_library(), core_num=3)
    x = t["x"].permute(0, 2, 3, 1).contiguous()
    pixels = p.batch * p.out_height * p.out_width
    full = torch.empty(pixels, p.kernel_taps, p.in_channels)
    kernels.im2col(launch_shape(p, 0, pixels), x, t["offset"], t["mask"], full)
    for dtype in (torch.float16, torch.bfloat16):
        narrow = torch.empty(pixels, p.kernel_taps, p.in_channels, dtype=dtype)
        kernels.im2col(launch_shape(p, 0, pixels, columns=dtype), x, t["offset"], t["mask"], narrow)
        assert torch.equal(narrow, full.to(dtype)), dtype
    with pytest.raises(ValueError, match="columnsType says"):
        kernels.im2col(launch_shape(p, 0, pixels), x, t["offset"], t["mask"], narrow)


@pytest.mark.parametrize("deterministic", ["0", "1"])
def test_empty_batch_launches_nothing(sim, monkeypatch, deterministic):
    monkeypatch.setenv("MX_DCN_DETERMINISTIC", deterministic)
    case = Case("empty", 0, 64, 5, 5, 8)
    before = len(sim.launches)
    leaves, out, _, _ = run_case(case, sim)
    assert out.shape == (0, 8, 5, 5) and len(sim.launches) == before
    assert float(leaves["weight"].grad.abs().sum()) == 0.0


def test_a_tiling_that_overfills_ub_is_stopped_by_the_model():
    """If the tiling believed in a 256 KiB UB, the kernel's buffers would not fit the UB a kernel may
    use (192 KiB less 8.25 KiB AscendC reserves): the model stops the launch instead of corrupting memory."""
    kernels = SimKernels(sim_library(), core_num=2, ub=256 * 1024)
    case = Case("wide", 1, 64, 9, 40, 4, padding=(1, 1))
    shape = (1, 9, 40, 64, 9, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 360)
    assert compute_tiling(IM2COL, shape, 2, 256 * 1024)[1]["ubBytes"] > UB_BYTES
    inputs = case.make_inputs(torch.float32)
    p = describe(*(inputs[k] for k in ("x", "offset", "mask", "weight", "bias")), **case.args())
    with pytest.raises(SimError, match="UB capacity exceeded"):
        run_with_kernels(p, *(inputs[k] for k in ("x", "offset", "mask", "weight", "bias")), kernels)


# --------------------------------------------------------------------------- the model's own rules

# Each rule toy (kernels_ascend/sim/selftest_kernels.cpp) with what its broken variant's message must
# name besides the toy's own phrase: the buffer, both pipes and the missing event for the hazards.
TOYS = {
    "copy_length": [], "ub_address": [], "ub_capacity": [], "repeat_256": [], "copy_gap_65536": [],
    "atomic_outside": ["'toy_out'"], "atomic_left_on": [], "ub_overrun": [], "blocks_overlap": ["'toy_out'"],
    "queue_leak": [],
    "mte2_then_v": ["pipe V reads", "TBuf<VECCALC>", "pipe MTE2 wrote", "WaitFlag<HardEvent::MTE2_V>"],
    "v_then_mte3": ["pipe MTE3 reads", "TBuf<VECCALC>", "pipe V wrote", "WaitFlag<HardEvent::V_MTE3>"],
    "s_reads_v_result": ["pipe S reads", "TBuf<VECCALC>", "pipe V wrote", "WaitFlag<HardEvent::V_S>"],
    "wrong_event_id": ["pipe V would wait forever"],
    "use_after_free": ["TQue<VECIN> buffer 0 of 1", "FreeTensor"],
    "partial_overlap": ["Muls", "100% or not at all"],
    "block_stride_256": ["BinaryRepeatParams"],
    "gm_past_tensor_end": ["GM elements [96, 160) of a GlobalTensor of 128 elements"],
    "unpaired_setflag": ["unpaired SetFlag"],
    "mte2_overwrites_v_input": ["pipe MTE2 writes", "pipe V read", "WaitFlag<HardEvent::V_MTE2>"],
    "mte2_overlapping_copies": ["pipe MTE2 writes", "pipe MTE2 wrote"],
    "s_write_then_mte3": ["pipe MTE3 reads", "pipe S wrote", "WaitFlag<HardEvent::S_MTE3>"],
    "v_overwrites_s_input": ["pipe V writes", "pipe S read", "WaitFlag<HardEvent::S_V>"],
    "dst_block_stride_0": [],
    "mte3_overlapping_copies": ["'toy_out'"],
    "compares_whole_repeats": ["Compares.md"],
    "cast_round_mode": ["CAST_RINT/FLOOR/CEIL/ROUND/TRUNC"],
    "count_partial_overlap": ["Add(count)", "100% or not at all"],
    "select_scalar_mode": ["Select.md"],
    "brcb_overlap": ["Brcb"],
    "reduce_block_stride": ["ReduceDataBlock.md"],
}


def test_every_rule_toy_is_listed(sim):
    assert [name for name, _ in sim.selftests()] == list(TOYS)


@pytest.mark.parametrize("toy", range(len(TOYS)), ids=list(TOYS))
def test_model_rejects_the_broken_toy_and_runs_the_fixed_one(sim, toy):
    name, phrase = sim.selftests()[toy]
    message = sim.selftest(toy, fixed=False)
    assert message is not None, f"toy {name} ran although it breaks a rule"
    assert message.startswith("AscendC model:") and phrase in message, message
    for part in TOYS[name]:
        assert part in message, f"{name}: {part!r} not in {message!r}"
    assert sim.selftest(toy, fixed=True) is None


def test_an_unknown_toy_is_refused(sim):
    with pytest.raises(ValueError, match="toy: expected"):
        sim.selftest(len(TOYS), fixed=True)


# --------------------------------------------------------------------------- through the public API


def test_public_api_runs_the_ascendc_algorithm(monkeypatch):
    """mx_dcn.modulated_deform_conv2d and deform_conv2d with the ascendc backend forced, its kernels
    served by the model: the backend's run() is wired to the API as on the device."""
    import mx_dcn
    from mx_dcn.backends.base import AVAILABLE
    backend = mx_dcn.get_backend("ascendc")
    kernels = SimKernels(sim_library(), core_num=3)
    monkeypatch.setattr(backend, "_availability", AVAILABLE)
    monkeypatch.setattr(backend, "_kernels", kernels)
    # The model runs on CPU tensors: let ascendc serve the CPU chain here, and skip its SoC rule
    # (there is no SoC to read on a CPU call; the constraint checks have their own tests).
    monkeypatch.setitem(mx_dcn.registry.CHAINS, "cpu", ("ascendc", "portable"))
    monkeypatch.setattr(backend, "violations", lambda problem: [])
    case = CASES[0][0]
    t = case.make_inputs(torch.float32)
    with mx_dcn.use_backend("ascendc"):
        out = mx_dcn.modulated_deform_conv2d(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], **case.args())
        v1 = mx_dcn.deform_conv2d(t["x"], t["offset"], t["weight"], **case.args())
    assert len(kernels.launches) == 2
    assert_close(out, oracle_forward(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], **case.args()), "api")
    assert_close(v1, oracle_forward(t["x"], t["offset"], None, t["weight"], None, **case.args()), "api v1")


def test_deterministic_mode_gives_bitwise_equal_grad_x_whatever_the_block_order():
    """Under torch.use_deterministic_algorithms(True) col2im runs its deterministic mode (grad_x by input
    rows, each owned by one block, added in a fixed order): forward and every gradient match the oracle
    and are bitwise equal with the blocks in ascending, reversed and shuffled order; several launches
    (a small workspace budget) accumulate into grad_x in launch order."""
    case = Case("overlapping_samples", 2, 128, 17, 19, 8, padding=(1, 1), offsets="outside")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        runs = []
        for order, seed in (("ascending", 0), ("reversed", 0), ("shuffled", 5)):
            kernels = SimKernels(sim_library(), core_num=7, block_order=order, seed=seed)
            with workspace_budget(1024 * 1024):
                leaves, out, grad_out, p = run_case(case, kernels, seed=2)
            col2im = [launch for launch in kernels.launches if launch.kernel == "col2im"]
            assert len(col2im) >= 2 and all(launch.shape[SHAPE_FIELDS.index("deterministic")] == 1
                                            for launch in col2im)
            _check_against_oracle(case, leaves, out, grad_out, f"deterministic {order}")
            runs.append([leaves[name].grad.clone() for name in ("x", "offset", "mask")])
    finally:
        torch.use_deterministic_algorithms(previous)
    for other in runs[1:]:
        for got, want in zip(other, runs[0]):
            assert torch.equal(got, want)


def test_deterministic_grad_x_does_not_depend_on_the_bands_or_tiles():
    """The deterministic sum runs in (pixel, tap) order of the launch whatever the tiling: with a UB so
    small that a block's rows take several bands and the walk narrower tiles, grad_x is bitwise the same."""
    case = Case("bands", 1, 64, 13, 21, 8, padding=(1, 1), offsets="outside")
    shape = (1, 13, 21, 64, 13, 21, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 273)
    full, small = compute_tiling(COL2IM, shape, 3)[1], compute_tiling(COL2IM, shape, 3, 64 * 1024)[1]
    owned = (13 + 2) // 3
    assert full["bandRows"] == owned and small["bandRows"] < owned and small["scanPixels"] < full["scanPixels"]
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        grads = []
        for ub in (UB_BYTES, 64 * 1024):
            leaves, *_ = run_case(case, SimKernels(sim_library(), core_num=3, ub=ub), seed=4)
            grads.append(leaves["x"].grad.clone())
    finally:
        torch.use_deterministic_algorithms(previous)
    assert torch.equal(grads[0], grads[1])


def test_the_backward_reuses_the_forwards_launches_whatever_the_budget_then():
    """The launches follow the workspace budget; the backward must keep the forward's (whole-image,
    direct products) even when it runs under a smaller budget -- another thread or a changed setting
    -- that would split the image: it used to fail in a reshape."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 64, 16, 16, generator=g), torch.randn(64, 64, 3, 3, generator=g) * 0.05
    offset, mask = torch.randn(1, 18, 16, 16, generator=g), torch.rand(1, 9, 16, 16, generator=g)
    leaves = [t.requires_grad_(True) for t in (x, offset, mask, w)]
    p = describe(x, offset, mask, w, None, padding=1)
    with workspace_budget(4 << 20):
        assert len(launch_chunks(p)) == 1
        out = run_with_kernels(p, x, offset, mask, w, None, SimKernels(sim_library()))
    grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    with workspace_budget(1 << 20):
        assert len(launch_chunks(p)) == 2   # the image would be split here
        out.backward(grad_out.float())
    want = oracle_backward(x, offset, mask, w, None, grad_out, padding=1)
    for name, leaf in zip(("x", "offset", "mask", "weight"), leaves):
        assert_close(leaf.grad, want[name], f"grad {name}")
