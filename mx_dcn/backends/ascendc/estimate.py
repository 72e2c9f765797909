"""An Atlas A2 (Ascend910B2) time ESTIMATE of the ascendc backend's forward and backward -- from the
AscendC CPU model's counters and cited public figures, never a measurement.

For each shape and pass, everything the NPU path does is one launch after another:
  - the sampling kernels (im2col, col2im): their real sources run on the model (kernels_ascend/sim)
    with every block; a launch takes the slowest core's timeline (the model's per-pipe timeline
    from the figures in kernels_ascend/sim/include/sim/costs.h), and at least the HBM time of all
    its GM bytes;
  - every torch op the algorithm runs (mx_dcn/backends/ascendc/algorithm.py) -- the matrix products
    on the cube unit and the layout copies, zeroing and bias on the vector cores -- traced with a
    dispatch mode on meta tensors and modelled by their HBM bytes and cube FLOPs at peak rates
    (optimistic for them: no tiling losses);
  - each launch also pays the launch overhead.
The roofline of a launch is its own work at peak rates: max(HBM bytes / HBM bandwidth, cube FLOPs /
cube peak, vector elements / vector peak); a pass's figures are the sums over its launches.
"""
from __future__ import annotations

import collections
import concurrent.futures
import math
import multiprocessing
import os
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ...problem import describe
from ..base import DETERMINISTIC_ENV
from .algorithm import channels_last, run_with_kernels
from .kernels import SamplingKernels, SimKernels
from .sim_library import ensure_sim_library
from .tiling import VECTOR_CORES

SOC = "Ascend910B2"
# (N, C_in, H, W, C_out) of 3x3 DCNv2 layers, stride 1, padding 1: the four benchmark targets
# (mx_dcn.bench.TARGET_SHAPES) and the ResNet-101-DCN stages of a 6-camera BEV model.
ESTIMATE_SHAPES: Dict[str, tuple] = {
    "n2_c64_64x64": (2, 64, 64, 64, 64),
    "n1_c256_32x32": (1, 256, 32, 32, 256),
    "n6_c64_64x176": (6, 64, 64, 176, 64),
    "n8_c128_32x32": (8, 128, 32, 32, 128),
    "n6_c256_58x100": (6, 256, 58, 100, 256),
    "n6_c512_29x50": (6, 512, 29, 50, 512),
}
LABEL = f"Atlas A2 ({SOC}) time ESTIMATE from the AscendC CPU model and cited figures -- not a measurement"
_MATMULS = {"mm", "bmm", "addmm", "baddbmm"}
_FREE = {"empty", "empty_like", "new_empty", "empty_strided", "new_empty_strided", "detach", "alias", "lift_fresh",
         "_unsafe_view"}
_WRITE_ONLY = {"zeros", "zeros_like", "new_zeros", "ones_like", "full", "full_like", "zero_", "fill_"}


# --------------------------------------------------------------------------- what the NPU path runs


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class _OpTrace(TorchDispatchMode):
    """Records every non-view torch op as (name, HBM bytes, FLOPs)."""

    def __init__(self):
        super().__init__()
        self.ops: List[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if func.is_view or name in _FREE:
            return out
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        written = sum(_nbytes(t) for t in tree_leaves(out) if isinstance(t, torch.Tensor))
        read = 0 if name in _WRITE_ONLY else _nbytes(args[1]) if name == "copy_" else sum(_nbytes(t) for t in inputs)
        flops = 0
        if name in _MATMULS:
            a, b = args[-2], args[-1]   # (.., m, k) x (.., k, n)
            flops = 2 * a.numel() * b.shape[-1]
            if a.dtype in (torch.float16, torch.bfloat16):
                name += ":half"   # the cube's half-precision rate
        self.ops.append((name, read + written, flops))
        return out


class _LaunchRecorder(SamplingKernels):
    """Records the sampling-kernel launches the algorithm makes (on meta tensors: nothing runs)."""

    name = "trace"

    def __init__(self):
        self.calls: List[tuple] = []

    def im2col(self, shape, x, offset, mask, columns) -> None:
        self.calls.append(("im2col", tuple(shape)))

    def col2im(self, shape, x, offset, mask, grad_columns, grad_x, grad_offset, grad_mask) -> None:
        self.calls.append(("col2im", tuple(shape)))


def _inputs(shape: tuple, device: str, seed: int = 0) -> dict:
    n, c, h, w, c_out = shape
    g = torch.Generator().manual_seed(seed)

    def make(*size, scale=1.0, uniform=False):
        if device == "meta":
            return torch.empty(*size, device="meta")
        return (torch.rand(*size, generator=g) if uniform else torch.randn(*size, generator=g)) * scale

    return dict(x=make(n, c, h, w), offset=make(n, 18, h, w, scale=2.0), mask=make(n, 9, h, w, uniform=True),
                weight=make(c_out, c, 3, 3, scale=(9 * c) ** -0.5), bias=make(c_out))


def trace_passes(shape: tuple) -> Dict[str, dict]:
    """The torch ops and sampling launches of the ascendc path's forward, backward and deterministic
    backward (col2im's deterministic mode, as under torch.use_deterministic_algorithms(True)) for
    `shape`: {"forward"|"backward"|"det_bwd": {"ops": [(name, bytes, flops)], "kernels": [(kernel,
    launch shape)]}}."""
    t = {k: v.requires_grad_(True) for k, v in _inputs(shape, "meta").items()}
    p = describe(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], padding=1)
    recorder = _LaunchRecorder()
    with _OpTrace() as forward:
        out = run_with_kernels(p, t["x"], t["offset"], t["mask"], t["weight"], t["bias"], recorder)
    marks = [len(recorder.calls)]
    traces = []
    for deterministic in (False, True):
        for leaf in t.values():   # each backward starts from empty .grad (no accumulation traced)
            leaf.grad = None
        # The environment variable rather than torch's flag: the same kernels are chosen, without
        # torch's filling of uninitialized memory that the flag also switches on.
        saved = os.environ.get(DETERMINISTIC_ENV)
        os.environ[DETERMINISTIC_ENV] = "1" if deterministic else "0"
        try:
            with _OpTrace() as backward:
                out.backward(torch.empty(out.shape, device="meta"), retain_graph=not deterministic)
        finally:
            if saved is None:
                del os.environ[DETERMINISTIC_ENV]
            else:
                os.environ[DETERMINISTIC_ENV] = saved
        traces.append(backward.ops)
        marks.append(len(recorder.calls))
    calls = recorder.calls
    return {"forward": dict(ops=forward.ops, kernels=calls[:marks[0]]),
            "backward": dict(ops=traces[0], kernels=calls[marks[0]:marks[1]]),
            "det_bwd": dict(ops=traces[1], kernels=calls[marks[1]:marks[2]])}


# --------------------------------------------------------------------------- costing the launches


class Costs:
    """The figures of kernels_ascend/sim/include/sim/costs.h, read from the model library."""

    def __init__(self, table: List[dict]):
        self.table = table
        v = {row["name"]: row["value"] for row in table}
        self.clock = v["clock_hz"]
        self.hbm = v["hbm_bytes_per_s"]
        self.launch_s = v["launch_us"] * 1e-6
        self.atomic_factor = v["atomic_cost_factor"]
        self.cube_flops = v["cube_cores"] * v["cube_fp32_macs_per_cycle"] * 2 * self.clock
        self.cube_half_flops = v["cube_cores"] * v["cube_half_macs_per_cycle"] * 2 * self.clock
        self.vector_elements = v["vector_cores"] * 64 / v["vec_cycles_per_repeat"] * self.clock   # fp32 / s
        self.vector_cores = int(v["vector_cores"])
        self.cube_cores = int(v["cube_cores"])


def _kernel_launch(launch, costs: Costs) -> dict:
    """Estimate, roofline and counters (summed over blocks; `critical`: the slowest block) of one
    sampling-kernel launch on the model."""
    names = launch.counters[0].keys()
    total = {k: sum(b[k] for b in launch.counters) for k in names}
    critical = max(launch.counters, key=lambda b: b["cycles"])
    hbm = total["gm_read_bytes"] + total["gm_write_bytes"] + costs.atomic_factor * total["atomic_bytes"]
    roofline = max(hbm / costs.hbm, total["vec_elements"] / costs.vector_elements)
    estimate = costs.launch_s + max(critical["cycles"] / costs.clock, hbm / costs.hbm)
    return dict(estimate_s=estimate, roofline_s=roofline, hbm_bytes=hbm, flops=0.0, counters=total,
                critical_cycles=critical["cycles"], blocks=launch.blocks)


def _torch_op(op: tuple, costs: Costs) -> dict:
    name, nbytes, flops = op
    roofline = max(nbytes / costs.hbm, flops / (costs.cube_half_flops if name.endswith(":half") else costs.cube_flops))
    return dict(estimate_s=costs.launch_s + roofline, roofline_s=roofline, hbm_bytes=float(nbytes),
                flops=float(flops), counters={}, critical_cycles=0.0, blocks=0)


def _group(kernel_or_op: str) -> str:
    if kernel_or_op in ("im2col", "col2im"):
        return kernel_or_op
    return "matmul (cube)" if kernel_or_op.split(":")[0] in _MATMULS else "torch ops (vector)"


# --------------------------------------------------------------------------- the fused forward, modelled

# A cube core's L1 buffer in a mixed cube/vector kernel: 512 KiB less 256 bytes
# (asc-devkit docs/zh/guide/编程指南/高级编程/硬件实现/架构规格/NPU架构版本2201.md, the storage table).
L1_BYTES = 512 * 1024 - 256


def fused_forward(p_shape: tuple, im2col: List[dict], matmuls: List[tuple], costs: Costs) -> dict:
    """What one mixed cube + vector kernel per launch would take instead of im2col + matmul: the vector
    cores sample as im2col does (their time and bytes as the model ran them), the cube cores multiply
    what they wrote. On Atlas A2 the AIC and AIV cores pass data through global memory
    (NPU架构版本2201.md: "AIV与AIC之间通过Global Memory进行数据传递"), so the columns still go out and back
    in; what fusion saves is the serialisation of the two units (and a launch). Double-buffered, each
    cube core multiplies at least two chunks, and re-reads the weight for each unless it fits its L1.
    Per launch: launch overhead + max(the vector cores' critical path, the cube's FLOPs at peak, all
    HBM bytes at HBM bandwidth)."""
    n, c, h, w, c_out = p_shape
    weight_bytes = c_out * 9 * c * 4
    separate = sum(k["estimate_s"] for k in im2col) + sum(costs.launch_s + max(b / costs.hbm, f / costs.cube_flops)
                                                           for _, b, f in matmuls)
    fused, weight_reads = 0.0, 0
    for k, (_, _, flops) in zip(im2col, matmuls):
        pixels = flops / (2 * 9 * c * c_out)
        reads = costs.cube_cores if weight_bytes <= L1_BYTES else 2 * costs.cube_cores
        weight_reads += reads
        hbm = k["hbm_bytes"] + pixels * 9 * c * 4 + reads * weight_bytes + pixels * c_out * 4
        fused += costs.launch_s + max(k["critical_cycles"] / costs.clock, flops / costs.cube_flops, hbm / costs.hbm)
    return dict(separate_us=separate * 1e6, fused_us=fused * 1e6, saves_us=(separate - fused) * 1e6,
                weight_reads=weight_reads)


# Counters shown per output pixel (sampling kernels).
PER_PIXEL = ("gm_bytes", "vec_instructions", "vec_repeats", "scalar_ops", "scalar_vector_waits", "wait_flags")


def _per_pixel(counters: Dict[str, float], pixels: int) -> Dict[str, float]:
    if not counters:
        return {}
    c = counters
    values = dict(gm_bytes=c["gm_read_bytes"] + c["gm_write_bytes"] + c["atomic_bytes"],
                  vec_instructions=c["vec_instructions"], vec_repeats=c["vec_repeats"],
                  scalar_ops=c["scalar_reads"] + c["scalar_writes"], scalar_vector_waits=c["scalar_vector_waits"],
                  wait_flags=c["wait_flags"])
    out = {k: v / pixels for k, v in values.items()}
    out["vec_fill"] = c["vec_elements"] / (64 * c["vec_repeats"]) if c["vec_repeats"] else 0.0
    return out


class _ModelRunner:
    """Runs sampling launches on the model with real data of one shape, once per distinct launch."""

    def __init__(self, shape: tuple, sim: SimKernels, seed: int):
        t = _inputs(shape, "cpu", seed)
        self.p = describe(t["x"], t["offset"], t["mask"], t["weight"], t["bias"], padding=1)
        self.x, self.off, self.msk = channels_last(self.p, t["x"]), t["offset"], t["mask"]
        self.sim, self.seed, self.done = sim, seed, {}

    def run(self, kernel: str, shape: tuple):
        if (kernel, shape) in self.done:
            return self.done[(kernel, shape)]
        start, count = shape[-2], shape[-1]
        taps, c = self.p.kernel_taps, self.p.in_channels
        if kernel == "im2col":
            self.sim.im2col(shape, self.x, self.off, self.msk, torch.empty(count, taps, c))
        else:
            g = torch.Generator().manual_seed(self.seed + start)
            self.sim.col2im(shape, self.x, self.off, self.msk, torch.randn(count, taps, c, generator=g),
                            torch.zeros_like(self.x), torch.empty_like(self.off), torch.empty_like(self.msk))
        self.done[(kernel, shape)] = self.sim.last_launch(kernel, shape)
        return self.done[(kernel, shape)]


def npu_estimate(shapes: Optional[Sequence[str]] = None, library: Optional[str] = None,
                 progress: Optional[Callable[[str], None]] = None, log: Optional[Callable[[str], None]] = None,
                 seed: int = 0, jobs: Optional[int] = None) -> List[dict]:
    """The estimate for `shapes` (names of ESTIMATE_SHAPES; default all): one record per (shape, pass)
    with "shape" [N, C, H, W, C_out], "pass" ("forward" | "backward" | "det_bwd": the backward with
    col2im's deterministic mode), "estimate_us" and
    "roofline_us" (all launches of the pass summed), "pixels" and "launches" (per kernel: launch
    count, estimate, roofline, HBM bytes, FLOPs, the derived counters of the table per output pixel
    and, for the sampling kernels, every model counter summed over blocks per output pixel). `progress(name)` hears
    of each shape (as it starts, or as it ends when shapes run in parallel), `log(message)` of a library
    build. Builds the model library when needed (raises SimLibraryError when it cannot). `jobs`
    processes (default: one per CPU, at most one per shape) run the shapes in parallel: the model
    runs a launch's blocks one after another on one thread, so this is where the time goes."""
    names = list(shapes) if shapes else list(ESTIMATE_SHAPES)
    for name in names:
        if name not in ESTIMATE_SHAPES:
            raise ValueError(f"shape: expected one of {list(ESTIMATE_SHAPES)}, got {name!r}")
    library = library or ensure_sim_library(log=log)
    jobs = min(jobs or os.cpu_count() or 1, len(names))
    if jobs <= 1:
        records = []
        for name in names:
            if progress:
                progress(name)
            records += _shape_records(name, library, seed)
        return records
    # spawn, not fork: a forked child of a process whose torch started its thread pools can hang
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        # the largest first, so that the last one to finish is a small one
        largest_first = sorted(names, key=lambda n: -math.prod(ESTIMATE_SHAPES[n]))
        futures = {pool.submit(_shape_records, name, library, seed): name for name in largest_first}
        by_name = {}
        for future in concurrent.futures.as_completed(futures):
            by_name[futures[future]] = future.result()
            if progress:
                progress(f"{futures[future]} estimated")
    return [record for name in names for record in by_name[name]]


def _shape_records(name: str, library: str, seed: int) -> List[dict]:
    """npu_estimate's records of one shape (a function of its own so that a worker process can run it)."""
    sim = SimKernels(library, core_num=VECTOR_CORES[SOC])
    sim.record = False
    costs = Costs(sim.cost_table())
    if costs.vector_cores != sim.core_num:
        raise RuntimeError(f"cost table: {costs.vector_cores} vector cores, tiling: {sim.core_num}")
    records = []
    shape = ESTIMATE_SHAPES[name]
    runner = _ModelRunner(shape, sim, seed)
    pixels = shape[0] * shape[2] * shape[3]
    for pass_name, trace in trace_passes(shape).items():
        parts = [(k, _kernel_launch(runner.run(k, s), costs)) for k, s in trace["kernels"]]
        fusion = None
        if pass_name == "forward":
            fusion = fused_forward(shape, [part for _, part in parts],
                                   [op for op in trace["ops"] if op[0].split(":")[0] in _MATMULS], costs)
        parts += [(op[0], _torch_op(op, costs)) for op in trace["ops"]]
        groups: Dict[str, dict] = collections.OrderedDict()
        for kind, part in parts:
            g = groups.setdefault(_group(kind), dict(launches=0, estimate_s=0.0, roofline_s=0.0, hbm_bytes=0.0,
                                                      flops=0.0, counters=collections.Counter()))
            g["launches"] += 1
            for key in ("estimate_s", "roofline_s", "hbm_bytes", "flops"):
                g[key] += part[key]
            g["counters"].update(part["counters"])
        launches = [dict(kernel=k, launches=g["launches"], estimate_us=g["estimate_s"] * 1e6,
                         roofline_us=g["roofline_s"] * 1e6, hbm_bytes=g["hbm_bytes"], flops=g["flops"],
                         per_pixel=_per_pixel(dict(g["counters"]), pixels),
                         counters_per_pixel={c: v / pixels for c, v in g["counters"].items()})
                    for k, g in groups.items()]
        estimate = sum(g["estimate_s"] for g in groups.values()) * 1e6
        roofline = sum(g["roofline_s"] for g in groups.values()) * 1e6
        record = dict(shape=list(shape), name=name, **{"pass": pass_name}, estimate_us=estimate,
                      roofline_us=roofline, ratio=estimate / roofline, pixels=pixels, soc=SOC, launches=launches,
                      note=LABEL)
        if fusion is not None:
            fusion["share_of_forward"] = fusion["saves_us"] / estimate
            fusion["pays"] = fusion["share_of_forward"] > 0.25
            record["fusion"] = fusion
        records.append(record)
    return records


# --------------------------------------------------------------------------- printing


def format_estimate(records: List[dict]) -> str:
    """The table: per shape, pass and kernel the counters per output pixel, estimate, roofline and
    their ratio; a total per pass, for forward + backward, and the deterministic backward's extra cost."""
    head = (f"{'shape [N,C,H,W,C_out]':<22} {'pass':<8} {'kernel':<19} {'launches':>8} {'HBM B/px':>9} "
            f"{'cube FLOP/px':>12} {'vec instr/px':>12} {'fill':>5} {'scalar/px':>9} {'S<->V/px':>8} "
            f"{'waits/px':>8} {'estimate us':>11} {'roofline us':>11} {'ratio':>6}")
    lines = [LABEL, "", head, "-" * len(head)]

    def row(shape, pass_name, kernel, launches, pp, hbm, flops, est, roof):
        def cell(key, width, fmt):
            return f"{format(pp[key], fmt):>{width}}" if key in pp else f"{'-':>{width}}"
        flop = f"{flops:>12.0f}" if flops else f"{'-':>12}"
        fill = f"{pp['vec_fill']:>5.0%}" if "vec_fill" in pp else f"{'-':>5}"
        return (f"{shape:<22} {pass_name:<8} {kernel:<19} {launches:>8} {hbm:>9.0f} {flop} "
                f"{cell('vec_instructions', 12, '.1f')} {fill} {cell('scalar_ops', 9, '.1f')} "
                f"{cell('scalar_vector_waits', 8, '.2f')} {cell('wait_flags', 8, '.1f')} {est:>11.1f} {roof:>11.1f} "
                f"{est / roof if roof else 0:>6.2f}")

    by_shape = collections.OrderedDict()
    for r in records:
        by_shape.setdefault(r["name"], []).append(r)
    for passes in by_shape.values():
        shape = "[" + ",".join(str(v) for v in passes[0]["shape"]) + "]"
        for r in passes:
            px = r["pixels"]
            for k in r["launches"]:
                lines.append(row(shape, r["pass"], k["kernel"], k["launches"], k["per_pixel"], k["hbm_bytes"] / px,
                                 k["flops"] / px, k["estimate_us"], k["roofline_us"]))
                shape = ""
            lines.append(row("", r["pass"], "total", sum(k["launches"] for k in r["launches"]), {},
                             sum(k["hbm_bytes"] for k in r["launches"]) / px,
                             sum(k["flops"] for k in r["launches"]) / px, r["estimate_us"], r["roofline_us"]))
        by_pass = {r["pass"]: r for r in passes}
        if "forward" in by_pass and "backward" in by_pass:
            pair = (by_pass["forward"], by_pass["backward"])
            est, roof = sum(r["estimate_us"] for r in pair), sum(r["roofline_us"] for r in pair)
            lines.append(f"{'':<22} {'fwd+bwd':<8} {'total':<19} {'':>8} {'':>9} {'':>12} {'':>12} {'':>5} {'':>9} "
                         f"{'':>8} {'':>8} {est:>11.1f} {roof:>11.1f} {est / roof:>6.2f}")
        if "fusion" in by_pass.get("forward", {}):
            f = by_pass["forward"]["fusion"]
            lines.append(f"{'':<22} fused forward (modelled): {f['fused_us']:.1f} us for im2col + matmul's "
                         f"{f['separate_us']:.1f}, saves {f['saves_us']:.1f} us = {f['share_of_forward']:.0%} of the "
                         f"forward ({'pays' if f['pays'] else 'does not pay'}: > 25% wanted; weight read "
                         f"{f['weight_reads']} times)")
        if "backward" in by_pass and "det_bwd" in by_pass:
            extra = by_pass["det_bwd"]["estimate_us"] - by_pass["backward"]["estimate_us"]
            lines.append(f"{'':<22} deterministic backward: {by_pass['det_bwd']['estimate_us']:.1f} us, "
                         f"{extra:+.1f} us ({extra / by_pass['backward']['estimate_us']:+.0%}) over the atomic one")
        lines.append("")
    lines += [
        "All counters per output pixel (N*Ho*Wo). Every block of every sampling launch ran on the model; a launch's",
        "estimate is its slowest core's timeline (or its HBM time, if longer) plus the launch overhead. Matrix",
        "products (cube) and the other torch ops (vector cores) are modelled by their HBM bytes and cube FLOPs at",
        "peak rates plus the launch overhead. fill = vector elements / (64 x repeats); scalar = GetValue + SetValue;",
        "S<->V = WaitFlag of V_S and S_V; waits = all WaitFlag (explicit and by the queues). Figures and their",
        "sources: kernels_ascend/README.md. An ESTIMATE for comparing kernel designs, not a measured speed.",
    ]
    return "\n".join(lines)


def cost_table_markdown(table: List[dict]) -> str:
    """kernels_ascend/README.md's table of the estimate's figures (from the model library)."""
    lines = ["| figure | value | unit | source |", "|---|---|---|---|"]
    for row in table:
        value = f"{row['value']:g}"
        lines.append(f"| `{row['name']}` | {value} | {row['unit']} | {row['source']} |")
    return "\n".join(lines)
