"""`mx-dcn bench`: mx_dcn against the dense convolution of the same shape and installed peers."""
from __future__ import annotations

import contextlib
import importlib.util
import sys
from typing import List

from .args import PROG, Formatter, UsageError, emit_json, name_list, output_file, positive_int, wrap


def cmd_bench(args) -> int:
    if args.npu_estimate:
        return npu_estimate(args)
    if importlib.util.find_spec("mx_dcn.bench") is None:
        print(f"{PROG} bench: error: mx_dcn.bench is not part of this installation", file=sys.stderr)
        return 1
    from .. import bench

    if args.gemm and args.plot:
        raise UsageError("--plot draws the convolution table; it does not combine with --gemm")
    if args.plot:
        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError("--plot needs matplotlib: pip install matplotlib (or mx_dcn[plot])")
        if not args.plot.lower().endswith(".png"):
            raise UsageError(f"--plot: expected a .png file name, got {args.plot!r}")
        output_file(args.plot, "--plot")
    names = args.shapes
    if names:
        unknown = [n for n in names if n not in bench.SHAPES]
        if unknown:
            raise UsageError(f"--shapes: unknown shape(s) {unknown}; known: {', '.join(bench.SHAPES)}")
    repeats = args.repeats
    if args.quick:  # a smoke test: the cheapest shape (fewest multiply-adds), 2 repeats
        def work(shape: dict) -> float:
            return shape["n"] * shape["c"] * shape["c_out"] * shape["h"] * shape["w"] / shape["stride"] ** 2

        names = names or [min(bench.SHAPES, key=lambda n: work(bench.SHAPES[n]))]
        repeats = repeats or 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.gemm:
        try:
            rows = bench.gemm_rates(names, repeats=20 if repeats is None else repeats)
        except Exception as e:  # e.g. the C++ kernel is not built
            print(f"{PROG} bench: error: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        if args.json:
            emit_json(rows)
        else:
            print(bench.format_gemm_table(rows))
        return 0
    progress = regress_progress = None
    if not args.json:
        from ..regress import Progress

        regress_progress = Progress(len(names or bench.SHAPES))
        progress = regress_progress
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the table / JSON
            results = bench.measure(shape_names=names, repeats=repeats,
                                    include_torchvision=not args.no_torchvision, progress=progress)
    except Exception as e:  # e.g. the C++ kernel is not built: say so instead of a traceback
        print(f"{PROG} bench: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        if regress_progress:
            regress_progress.close()
    if args.json:
        emit_json(results)
    else:
        print(bench.format_table(results))
    if args.plot:
        plot_bench(results, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def npu_estimate(args) -> int:
    """--npu-estimate: the Atlas A2 estimate of the ascendc path from the AscendC model."""
    from ..backends.ascendc import estimate
    from ..regress import Progress

    others = [flag for flag, on in (("--gemm", args.gemm), ("--plot", args.plot), ("--repeats", args.repeats),
                                    ("--quick", args.quick), ("--threads", args.threads),
                                    ("--no-torchvision", args.no_torchvision)) if on]
    if others:
        raise UsageError(f"--npu-estimate runs the kernels on the AscendC model, it measures nothing: "
                         f"{', '.join(others)} does not combine with it")
    names = args.shapes or list(estimate.ESTIMATE_SHAPES)
    unknown = [n for n in names if n not in estimate.ESTIMATE_SHAPES]
    if unknown:
        raise UsageError(f"--shapes: unknown shape(s) {unknown} for --npu-estimate; known: "
                         f"{', '.join(estimate.ESTIMATE_SHAPES)}")
    progress = Progress(len(names))

    def log(message: str) -> None:
        print(f"{PROG} bench: {message}", file=sys.stderr)

    try:
        records = estimate.npu_estimate(names, progress=progress, log=log)
    except Exception as e:  # no model library and no way to build it, or a model error: say so
        print(f"{PROG} bench: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    if args.json:
        emit_json(records)
    else:
        print(estimate.format_estimate(records))
    return 0


# What each bar is labelled with: the table's own figures (bench.format_table), never recomputed from
# the bars' medians -- a ratio of medians differs from the median of per-round ratios the table shows.
_SERIES = (("dense conv (F.conv2d)", "dense"), ("mx_dcn", "mxdcn"), ("torchvision", "torchvision"))
_PHASES = (("forward", "fwd"), ("forward + backward", "fwdbwd"))


def bar_label(row: dict, key: str, phase: str) -> str:
    """The label above one bar: the dense conv's time, mx_dcn's ratio to it and torchvision's time over
    mx_dcn's, as the table prints them (ratio, and speed-up 'x')."""
    if key == "dense":
        return f"{row[f'dense_{phase}_ms']:.3g} ms"
    if key == "mxdcn":
        return f"{row[f'{phase}_ratio']:.2f}x dense"
    speedup = row.get(f"speedup_{phase}")
    return f"mx {speedup:.1f}x faster" if speedup is not None else ""


def plot_bench(results: List[dict], path: str) -> List[str]:
    """Two panels (forward, forward+backward): the median time per shape of the dense conv, mx_dcn and
    each peer measured, labelled as `bar_label` says. Linear axis from 0, switched to log only when the
    times span more than 20x (so small bars stay visible, never misleadingly). Returns the labels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(label, key) for label, key in _SERIES if any(r.get(f"{key}_fwd_ms") is not None for r in results)]
    shapes = [str(r["shape"]) for r in results]
    fig, axes = plt.subplots(2, 1, figsize=(max(7, 0.6 * len(shapes) * len(series) + 3), 8.5))
    width = 0.8 / len(series)
    drawn = []
    for ax, (title, phase) in zip(axes, _PHASES):
        values = [v for r in results for _, key in series if (v := r.get(f"{key}_{phase}_ms"))]
        for k, (label, key) in enumerate(series):
            for i, r in enumerate(results):
                y = r.get(f"{key}_{phase}_ms")
                if y is None:
                    continue
                x = i + (k - (len(series) - 1) / 2) * width
                ax.bar(x, y, width, color=f"C{k}", label=label if i == 0 else None)
                text = bar_label(r, key, phase)
                ax.annotate(text, (x, y), ha="center", va="bottom", fontsize=7)
                drawn.append(text)
        if values and max(values) / min(values) > 20:
            ax.set_yscale("log")
            ax.set_ylim(bottom=min(values) / 2)
            ax.set_ylabel("time per call (ms, log scale)")
        else:
            ax.set_ylim(0, max(values) * 1.15 if values else 1)
            ax.set_ylabel("time per call (ms)")
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels(shapes, rotation=20 if len(shapes) > 2 else 0, ha="right" if len(shapes) > 2 else "center",
                           fontsize=8)
        ax.set_title(title, fontsize=11)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Deformable conv 3x3 fp32 vs the dense conv of the same shape: bars are median times; labels\n"
                 "are the table's figures (median of the per-round ratios: mx_dcn / dense, torchvision / mx_dcn)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


# --------------------------------------------------------------------------- the parser


def register(sub) -> None:
    p = sub.add_parser(
        "bench", formatter_class=Formatter, help="time mx_dcn against dense conv and installed peers",
        description=wrap("Time forward and forward+backward of mx_dcn against the dense convolution of the same "
                    "shape (the floor) and torchvision when installed; print a table, JSON or a plot. "
                    "With --npu-estimate, instead ESTIMATE the ascendc path on an Atlas A2 NPU: the AscendC "
                    "kernel sources run on the CPU model of the AscendC API (kernels_ascend/sim), which counts "
                    "their work and turns it into time from cited hardware figures -- an estimate for "
                    "comparing kernel designs, not a measurement."),
        epilog="""examples:
  mx-dcn bench                          every shape, table on stdout
  mx-dcn bench --quick                  the cheapest shape, 2 repeats (a smoke test)
  mx-dcn bench --shapes NAME,NAME --repeats 20 --json > bench.json
  mx-dcn bench --plot bench.png         also draw time per shape (needs matplotlib)
  mx-dcn bench --gemm                   the tile products: mx_dcn's own GEMM against the BLAS
  mx-dcn bench --npu-estimate           Atlas A2 estimate of the NPU kernels, six shapes (~1 min)
  mx-dcn bench --npu-estimate --json    one record per (shape, pass): shape, pass, estimate_us,
                                        roofline_us, ratio and per-kernel counters per output pixel
Run it on an idle machine: other processes inflate the times (not those of --npu-estimate, which
are computed, not measured).""")
    p.add_argument("--shapes", type=name_list, metavar="A,B",
                   help="only these shapes (default: all; with --gemm, the four target shapes; with "
                        "--npu-estimate, its six: n2_c64_64x64, n1_c256_32x32, n6_c64_64x176, n8_c128_32x32, "
                        "n6_c256_58x100, n6_c512_29x50)")
    p.add_argument("--repeats", type=positive_int, help="timed repetitions per measurement")
    p.add_argument("--quick", action="store_true",
                   help="the cheapest shape only (unless --shapes) and 2 repeats (unless --repeats)")
    p.add_argument("--no-torchvision", action="store_true", help="do not time torchvision even if installed")
    p.add_argument("--threads", type=positive_int, help="torch.set_num_threads before measuring")
    p.add_argument("--json", action="store_true", help="results as JSON on stdout")
    p.add_argument("--plot", metavar="FILE.png",
                   help="also draw the table: median times as bars, labelled with the table's ratios (the "
                        "file's directory is checked before anything is measured)")
    p.add_argument("--gemm", action="store_true",
                   help="instead, time the forward's tile products (the kernel's tile rows, one thread) by "
                        "mx_dcn's own GEMM and by the BLAS, in GFLOP/s: what MX_DCN_CPU_GEMM chooses between "
                        "(default shapes: the four targets)")
    p.add_argument("--npu-estimate", action="store_true",
                   help="instead, ESTIMATE the ascendc backend on Atlas A2 (Ascend910B2): run the AscendC kernels "
                        "on the CPU model of the AscendC API for the four target shapes and the ResNet-101-DCN "
                        "stages of a 6-camera BEV model, and print per pass (forward, backward) and kernel the "
                        "counters per output pixel, the estimated time, the roofline bound and their ratio. The "
                        "model library is built on first use (needs g++ and a source checkout). Figures and "
                        "sources: kernels_ascend/README.md")
    p.set_defaults(func=cmd_bench)
