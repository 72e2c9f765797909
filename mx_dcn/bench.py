"""CPU benchmark: mx_dcn's C++ kernel against the dense convolution of the same shape (its floor) and,
when importable, torchvision's deform_conv2d. fp32, 3x3 kernels, everything measured in one process.

    python -m mx_dcn.bench            # all shapes
    python -m mx_dcn.bench --quick    # small repeats, for a smoke test
    python -m mx_dcn.bench --shapes n2_c64_64x64 s2_n2_c64_64x64 --repeats 20
    python -m mx_dcn.bench --gemm     # the tile products: mx_dcn's own GEMM against the BLAS

Times are medians over `repeats` rounds after warm-up; a round runs every contender once, back to
back, and each ratio (mx_dcn / dense conv, torchvision / mx_dcn) is the median of the rounds' own
ratios, so a slow spell of a busy machine scales both sides of a ratio and cancels. Still, measure
on an idle machine (`uptime`): on a shared virtual machine the ratios move by about 0.1-0.2 between
runs, since neighbours slow the memory-bound sampling and the compute-bound dense conv differently. forward+backward is one forward and one
backward for every input (x, offset, mask, weight, bias; x, weight, bias for the dense conv).
peak extra MB is the largest workspace the kernel held during a forward+backward (its channels-last
copies, column tiles, staging buffers), as recorded by the kernel itself. faults dense / faults mx are
the minor page faults of the process during one forward (median over the rounds; where the platform
counts them): a first touch of a fresh 4 KiB page, microseconds each, which the C allocator's state
decides and which moves either side's time between runs.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

SHAPES: Dict[str, Dict[str, int]] = {
    "n2_c64_64x64": dict(n=2, c=64, h=64, w=64, c_out=64, stride=1, dilation=1),
    "n1_c256_32x32": dict(n=1, c=256, h=32, w=32, c_out=256, stride=1, dilation=1),
    "n6_c64_64x176": dict(n=6, c=64, h=64, w=176, c_out=64, stride=1, dilation=1),
    "n8_c128_32x32": dict(n=8, c=128, h=32, w=32, c_out=128, stride=1, dilation=1),
    "s2_n2_c64_64x64": dict(n=2, c=64, h=64, w=64, c_out=64, stride=2, dilation=1),
    "d2_n2_c64_64x64": dict(n=2, c=64, h=64, w=64, c_out=64, stride=1, dilation=2),
    # small feature maps with many channels (a detection head's ROI features, a late backbone stage)
    "n2_c256_7x7": dict(n=2, c=256, h=7, w=7, c_out=256, stride=1, dilation=1),
    "n1_c256_10x10": dict(n=1, c=256, h=10, w=10, c_out=256, stride=1, dilation=1),
    # one image of a late backbone stage: a single tile, whose product the threads share
    "n1_c512_7x7": dict(n=1, c=512, h=7, w=7, c_out=512, stride=1, dilation=1),
}
# The shapes the performance targets are stated on (forward <= 1.5x, forward+backward <= 3x dense).
TARGET_SHAPES = ("n2_c64_64x64", "n1_c256_32x32", "n6_c64_64x176", "n8_c128_32x32")
FWD_TARGET, FWDBWD_TARGET = 1.5, 3.0


def _inputs(shape: Dict[str, int], seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n, c, h, w, c_out = shape["n"], shape["c"], shape["h"], shape["w"], shape["c_out"]
    s, d = shape["stride"], shape["dilation"]
    pad = d  # 3x3: padding == dilation keeps the size at stride 1
    ho, wo = (h + 2 * pad - 2 * d - 1) // s + 1, (w + 2 * pad - 2 * d - 1) // s + 1
    x = torch.randn(n, c, h, w, generator=g)
    weight = torch.randn(c_out, c, 3, 3, generator=g) / (9 * c) ** 0.5
    bias = torch.randn(c_out, generator=g)
    offset = torch.randn(n, 18, ho, wo, generator=g) * 2.0
    mask = torch.rand(n, 9, ho, wo, generator=g)
    return dict(x=x, offset=offset, mask=mask, weight=weight, bias=bias, stride=s, padding=pad, dilation=d)


def _minor_faults() -> Optional[int]:
    """Minor page faults of this process so far, or None where the platform does not count them."""
    try:
        import resource
    except ImportError:  # not a Unix
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def timed_rounds(fns: Sequence[Callable[[], None]], repeats: int, warmup: int = 1,
                  faults: Optional[List[List[int]]] = None) -> List[List[float]]:
    """Wall times (ms) of each of `fns` over `repeats` rounds, each round running every fn once, back
    to back, so that all contenders of a round see the same machine load (other processes on a shared
    machine come and go). With `faults` (a list per fn), each call's minor page faults are appended."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: List[List[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, (fn, acc) in enumerate(zip(fns, times)):
            f0 = _minor_faults()
            t0 = time.perf_counter()
            fn()
            acc.append((time.perf_counter() - t0) * 1e3)
            if faults is not None and f0 is not None:
                faults[i].append(_minor_faults() - f0)
    return times


def paired_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over rounds of num / den: each ratio compares two runs made seconds apart, so a slow
    spell of the machine scales both and cancels (a ratio of medians lets it move the figure)."""
    return statistics.median(a / b for a, b in zip(num, den))


def _fwd_bwd(call: Callable, tensors: Sequence[torch.Tensor]):
    leaves = [t.detach().requires_grad_(True) for t in tensors]

    def run():
        out = call(*leaves)
        out.backward(torch.ones_like(out))
        for t in leaves:
            t.grad = None
    return run


def _torchvision():
    try:
        from torchvision.ops import deform_conv2d
    except Exception:  # not installed, or built for another torch
        return None
    return deform_conv2d


def measure(shape_names: Optional[Sequence[str]] = None, repeats: Optional[int] = None,
            include_torchvision: bool = True, progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    """One dict per shape (see the module doc); times in ms, ratios mx_dcn / dense conv, speed-ups
    torchvision / mx_dcn (None when torchvision is absent)."""
    import mx_dcn
    from mx_dcn import ops

    ops.load()
    names = list(shape_names) if shape_names else list(SHAPES)
    for name in names:
        if name not in SHAPES:
            raise ValueError(f"shape: expected one of {sorted(SHAPES)}, got {name!r}")
    repeats = 10 if repeats is None else int(repeats)
    if repeats < 1:
        raise ValueError(f"repeats: expected >= 1, got {repeats}")
    tv = _torchvision() if include_torchvision else None
    results = []
    for name in names:
        if progress:
            progress(name)
        a = _inputs(SHAPES[name])
        conv_args = dict(stride=a["stride"], padding=a["padding"], dilation=a["dilation"])

        def dense(x, weight, bias):
            return F.conv2d(x, weight, bias, **conv_args)

        def ours(x, offset, mask, weight, bias):
            with mx_dcn.use_backend("cpu"):
                return mx_dcn.modulated_deform_conv2d(x, offset, mask, weight, bias, **conv_args)

        dense_in = (a["x"], a["weight"], a["bias"])
        ours_in = (a["x"], a["offset"], a["mask"], a["weight"], a["bias"])

        def theirs(x, offset, mask, weight, bias):
            return tv(x, offset, weight, bias, mask=mask, **conv_args)

        fwd = [lambda: dense(*dense_in), lambda: ours(*ours_in)]
        fwdbwd = [_fwd_bwd(dense, dense_in), _fwd_bwd(ours, ours_in)]
        if tv is not None:
            fwd.append(lambda: theirs(*ours_in))
            fwdbwd.append(_fwd_bwd(theirs, ours_in))
        fwd_faults: List[List[int]] = [[] for _ in fwd]
        with torch.no_grad():
            fwd_t = timed_rounds(fwd, repeats, faults=fwd_faults)
        ops.reset_workspace_peak()
        fwdbwd_t = timed_rounds(fwdbwd, repeats)
        fwd_ms, fwdbwd_ms = [statistics.median(t) for t in fwd_t], [statistics.median(t) for t in fwdbwd_t]
        row = dict(shape=name, dense_fwd_ms=fwd_ms[0], mxdcn_fwd_ms=fwd_ms[1], dense_fwdbwd_ms=fwdbwd_ms[0],
                   mxdcn_fwdbwd_ms=fwdbwd_ms[1], peak_extra_mb=ops.workspace_peak_bytes() / 2 ** 20,
                   dense_fwd_faults=_median_or_none(fwd_faults[0]), mxdcn_fwd_faults=_median_or_none(fwd_faults[1]))
        row["fwd_ratio"] = paired_ratio(fwd_t[1], fwd_t[0])
        row["fwdbwd_ratio"] = paired_ratio(fwdbwd_t[1], fwdbwd_t[0])
        row.update(torchvision_fwd_ms=None, torchvision_fwdbwd_ms=None, speedup_fwd=None, speedup_fwdbwd=None)
        if tv is not None:
            row["torchvision_fwd_ms"], row["torchvision_fwdbwd_ms"] = fwd_ms[2], fwdbwd_ms[2]
            row["speedup_fwd"] = paired_ratio(fwd_t[2], fwd_t[1])
            row["speedup_fwdbwd"] = paired_ratio(fwdbwd_t[2], fwdbwd_t[1])
        results.append(row)
    return results


def gemm_rates(shape_names: Optional[Sequence[str]] = None, repeats: int = 20) -> List[dict]:
    """GFLOP/s of the forward's tile product of each shape (as many rows of columns, 9*C wide, as the kernel's
    tiles have, by the (9*C, C_out) weight; float32, one thread, as the kernel's tasks run it) by mx_dcn's own
    GEMM and by the BLAS torch links, medians of `repeats` calls: the figures behind the MX_DCN_CPU_GEMM
    default. Shapes default to the four target shapes; products already timed are not repeated. `own` is
    None where the kernel set in use has no own GEMM (it is an AVX-512 one). A shape whose single tile the
    kernel splits between threads (n1_c512_7x7) is timed whole here, as one thread would run it."""
    from mx_dcn import ops

    mod = ops.load()
    ops._sync_budget()  # the tile rows follow the current workspace budget
    names = list(shape_names) if shape_names else list(TARGET_SHAPES)
    for name in names:
        if name not in SHAPES:
            raise ValueError(f"shape: expected one of {sorted(SHAPES)}, got {name!r}")
    if repeats < 1:
        raise ValueError(f"repeats: expected >= 1, got {repeats}")
    has_own = mod.kernel_isa() == "avx512"
    rows, seen = [], set()
    for name in names:
        sh = SHAPES[name]
        m = mod.forward_tile_rows(sh["n"], sh["c"], sh["h"], sh["w"], sh["c_out"], stride=sh["stride"],
                                  padding=sh["dilation"], dilation=sh["dilation"])
        k, n = 9 * sh["c"], sh["c_out"]
        if (m, k, n) in seen:
            continue
        seen.add((m, k, n))
        flop = 2.0 * m * k * n

        def rate(which):
            return flop / statistics.median(mod.gemm_seconds(m, n, k, which, repeats)) / 1e9

        own = rate("own") if has_own else None
        blas = rate("blas")
        rows.append(dict(shape=name, m=m, k=k, n=n, own_gflops=own, blas_gflops=blas,
                         own_over_blas=own / blas if own else None, default=mod.kernel_gemm()))
    return rows


def format_gemm_table(rows: List[dict]) -> str:
    lines = [f"{'tile product (M x K by K x N)':<34}{'own GFLOP/s':>12}{'BLAS GFLOP/s':>14}{'own/BLAS':>10}",
             "-" * 70]
    for r in rows:
        own = f"{r['own_gflops']:.1f}" if r["own_gflops"] else "-"
        ratio = f"{r['own_over_blas']:.2f}" if r["own_over_blas"] else "-"
        label = f"{r['m']} x {r['k']} by {r['k']} x {r['n']}"
        lines.append(f"{label:<34}{own:>12}{r['blas_gflops']:>14.1f}{ratio:>10}")
    default = rows[0]["default"] if rows else "?"
    lines.append(f"float32, one thread, medians of calls; the kernel uses: {default} "
                 "(MX_DCN_CPU_GEMM=own|blas forces it; '-': no own GEMM on this CPU)")
    return "\n".join(lines)


def _median_or_none(values: Sequence[int]) -> Optional[float]:
    return statistics.median(values) if values else None


def _describe(name: str) -> str:
    s = SHAPES[name]
    extra = "".join(f" {k}{s[k]}" for k in ("stride", "dilation") if s[k] != 1)
    return f"({s['n']},{s['c']},{s['h']},{s['w']},{s['c_out']}){extra}"


def format_table(results: List[dict]) -> str:
    """A plain-text table: one line per shape."""
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    head = (f"{'shape (N,C,H,W,Cout)':<28}{'dense fwd':>10}{'mx fwd':>9}{'ratio':>7}"
            f"{'dense f+b':>11}{'mx f+b':>9}{'ratio':>7}{'tv fwd':>9}{'tv f+b':>9}{'x fwd':>7}{'x f+b':>7}"
            f"{'extra MB':>10}{'faults dense':>14}{'faults mx':>11}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{_describe(r['shape']):<28}{r['dense_fwd_ms']:>10.2f}{r['mxdcn_fwd_ms']:>9.2f}{r['fwd_ratio']:>7.2f}"
            f"{r['dense_fwdbwd_ms']:>11.2f}{r['mxdcn_fwdbwd_ms']:>9.2f}{r['fwdbwd_ratio']:>7.2f}"
            f"{num(r['torchvision_fwd_ms'], '9.2f'):>9}{num(r['torchvision_fwdbwd_ms'], '9.2f'):>9}"
            f"{num(r['speedup_fwd'], '7.1f'):>7}{num(r['speedup_fwdbwd'], '7.1f'):>7}{r['peak_extra_mb']:>10.1f}"
            f"{num(r['dense_fwd_faults'], '14.0f'):>14}{num(r['mxdcn_fwd_faults'], '11.0f'):>11}")
    from mx_dcn import ops
    lines.append(f"times in ms (median of rounds), fp32, 3x3, {torch.get_num_threads()} threads, torch {torch.__version__}, "
                 f"sampling kernels: {ops.load().kernel_isa()}, GEMM: {ops.load().kernel_gemm()}; ratio = mx_dcn / dense "
                 f"conv, median of the per-round ratios (targets: forward <= {FWD_TARGET}, forward+backward <= {FWDBWD_TARGET}); "
                 "x = speed-up over torchvision ('-': torchvision not importable); faults = minor page faults "
                 "per forward call (median)")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from mx_dcn.cli.args import positive_int

    parser = argparse.ArgumentParser(prog="python -m mx_dcn.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), help="shapes to run (default: all)")
    parser.add_argument("--repeats", type=positive_int, default=None,
                        help="timed runs per figure (default 10; 20 calls per product with --gemm)")
    parser.add_argument("--quick", action="store_true", help="2 repeats (a smoke test, not a measurement)")
    parser.add_argument("--no-torchvision", action="store_true", help="skip torchvision even if importable")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads before measuring")
    parser.add_argument("--gemm", action="store_true",
                        help="instead, the forward's tile products by mx_dcn's own GEMM and by the BLAS (GFLOP/s; "
                             "default shapes: the four targets)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else None)
    if args.gemm:
        print(format_gemm_table(gemm_rates(args.shapes, repeats=20 if repeats is None else repeats)))
        return 0
    results = measure(args.shapes, repeats=repeats, include_torchvision=not args.no_torchvision)
    print(format_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
