"""The `mx-dcn` command line (also `python -m mx_dcn`): info, check, regress, bench.

Exit codes: 0 success; 1 a check failed (a fallback under --fail-on-fallback, a regression mismatch,
a model that could not run); 2 a usage error (bad flag or value, unknown model, unusable device).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import traceback
from typing import List, Optional, Sequence, Tuple

PROG = "mx-dcn"
DEVICES = ("cpu", "cuda", "npu")


class UsageError(Exception):
    """A wrong value found after parsing (unknown case, invalid call, missing device): exit 2."""


# --------------------------------------------------------------------------- argument types


def _ints(text: str, what: str) -> Tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what} as comma-separated integers, got {text!r}") from None


def shape4(text: str) -> Tuple[int, ...]:
    """'1,64,32,32' -> (1, 64, 32, 32)."""
    value = _ints(text, "a shape")
    if len(value) != 4 or any(v < 0 for v in value):
        raise argparse.ArgumentTypeError(f"expected 4 non-negative integers like 1,64,32,32, got {text!r}")
    return value


def shape_any(text: str) -> Tuple[int, ...]:
    """A model input shape of any rank: '1,3,224,224'."""
    value = _ints(text, "a shape")
    if not value or any(v < 0 for v in value):
        raise argparse.ArgumentTypeError(f"expected non-negative integers like 1,3,224,224, got {text!r}")
    return value


def pair(text: str) -> Tuple[int, int]:
    """'2' -> (2, 2); '2,1' -> (2, 1)."""
    value = _ints(text, "an int or a pair")
    if len(value) == 1:
        return (value[0], value[0])
    if len(value) != 2:
        raise argparse.ArgumentTypeError(f"expected an int or a pair like 2,1, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def dtype_list(text: str):
    from .problem import parse_dtype

    out = []
    for name in text.split(","):
        try:
            out.append(parse_dtype(name.strip()))
        except (TypeError, ValueError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return out


def dtype_one(text: str):
    values = dtype_list(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one dtype, got {text!r}")
    return values[0]


def name_list(text: str) -> List[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


# --------------------------------------------------------------------------- helpers


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cann_version() -> Optional[str]:
    """The CANN toolkit version from its install info, if a toolkit is installed."""
    roots = [os.environ.get(k) for k in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH")]
    roots += ["/usr/local/Ascend/ascend-toolkit/latest", "/usr/local/Ascend/cann"]
    for root in filter(None, roots):
        for name in ("version.cfg", "ascend_toolkit_install.info", "compiler/version.info"):
            path = os.path.join(root, name)
            if os.path.isfile(path):
                with open(path, errors="replace") as f:
                    for line in f:
                        key, _, value = line.partition("=")
                        if "version" in key.lower() and value.strip():
                            return value.strip().strip('"') + f" ({root})"
    return None


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(f"{str(c):<{w}}" for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(headers), line("-" * w for w in widths)] + [line(r) for r in rows]


def _emit_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _prepare_device(device: str) -> None:
    """Make `device` usable for running kernels here, or raise UsageError saying why not."""
    from .model_check import ensure_device_runtime
    from .problem import device_present

    ensure_device_runtime(device)
    if not device_present(device):
        hint = {"npu": "torch_npu is not installed or sees no NPU",
                "cuda": "this torch has no CUDA or sees no GPU"}.get(device, "")
        raise UsageError(f"device '{device}' is not available on this machine ({hint}); "
                         "use 'mx-dcn check' to judge a target you do not have")


# --------------------------------------------------------------------------- info


def _cpu_kernel_dispatch() -> str:
    """What the C++ CPU kernel runs on this machine ("avx512 sampling, own GEMM"), or why it cannot say."""
    from . import ops

    if ops.load_error() is not None:
        return "not built"
    try:
        mod = ops.load()
        return f"{mod.kernel_isa()} sampling, {mod.kernel_gemm()} GEMM"
    except Exception as e:  # e.g. a bad MX_DCN_CPU_ISA: info reports it instead of failing
        return f"error: {e}"


def cmd_info(args) -> int:
    import torch

    from . import __version__, registry

    devices = [{"type": "cpu", "count": 1, "detail": f"{torch.get_num_threads()} threads"}]
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        devices.append({"type": "cuda", "count": len(names), "detail": ", ".join(names)})
    npu_note = None
    if importlib.util.find_spec("torch_npu") is not None:
        try:
            import torch_npu  # noqa: F401
            if torch.npu.is_available():
                names = [torch.npu.get_device_name(i) for i in range(torch.npu.device_count())]
                devices.append({"type": "npu", "count": len(names), "detail": ", ".join(names)})
        except Exception as e:  # report, do not crash: info is the tool people run when things break
            npu_note = f"torch_npu failed to load: {type(e).__name__}: {e}"
    versions = {"mx_dcn": __version__, "torch": torch.__version__,
                "python": sys.version.split()[0], "numpy": _version("numpy"),
                "torch_npu": _version("torch_npu"), "CANN": _cann_version(),
                "CUDA (torch)": torch.version.cuda}
    peers = {name: _version(name) for name in ("torchvision", "mmcv", "mx_driving", "matplotlib")}
    backends = []
    for name in registry.backend_names():
        try:
            b = registry.get_backend(name)
            a = b.available()
            backends.append({"name": name, "devices": list(b.device_types), "available": bool(a),
                             "reason": "" if a else a.reason, "description": b.description})
        except Exception as e:  # a backend module that fails to import is reported, not fatal
            backends.append({"name": name, "devices": [], "available": False,
                             "reason": f"failed to load: {type(e).__name__}: {e}", "description": ""})
    from .workspace import cache_limit_from_env, get_workspace_budget

    settings = {"MX_DCN_BACKEND": os.environ.get("MX_DCN_BACKEND", ""),
                "MX_DCN_STRICT": os.environ.get("MX_DCN_STRICT", ""),
                "workspace budget (MiB)": get_workspace_budget() // (1024 * 1024),
                "workspace cache (MiB)": cache_limit_from_env() // (1024 * 1024),
                "MX_DCN_CPU_ISA": os.environ.get("MX_DCN_CPU_ISA", ""),
                "MX_DCN_CPU_GEMM": os.environ.get("MX_DCN_CPU_GEMM", ""),
                "CPU kernel": _cpu_kernel_dispatch()}
    chains = {d: list(registry.chain_for(d)) for d in DEVICES}
    if args.json:
        _emit_json({"versions": versions, "peers": peers, "devices": devices, "backends": backends,
                    "chains": chains, "settings": settings, "notes": [npu_note] if npu_note else []})
        return 0
    out = ["Versions:"]
    out += [f"  {k:<14} {v if v else 'not installed'}" for k, v in versions.items()]
    out += ["Peers (for comparisons):"]
    out += [f"  {k:<14} {v if v else 'not installed'}" for k, v in peers.items()]
    out += ["Devices seen:"]
    out += [f"  {d['type']:<6} x{d['count']}  {d['detail']}" for d in devices]
    if npu_note:
        out.append(f"  ({npu_note})")
    out += ["Backends:"]
    rows = [(b["name"], ",".join(b["devices"]), "yes" if b["available"] else "no", b["reason"] or b["description"])
            for b in backends]
    out += ["  " + line for line in _table(("backend", "devices", "available", "reason / description"), rows)]
    out += ["Preference per device: " + "; ".join(f"{d}: {' -> '.join(c)}" for d, c in chains.items())]
    out += ["Settings: " + ", ".join(f"{k}={v!s}" for k, v in settings.items())]
    print("\n".join(out))
    return 0


# --------------------------------------------------------------------------- check


def _pair_text(p) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def _backend_counts(verdicts) -> dict:
    """backend -> number of calls it gets, most used first."""
    counts: dict = {}
    for v in verdicts:
        counts[v.chosen or "none"] = counts.get(v.chosen or "none", 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def format_check(verdicts, title: List[str]) -> str:
    """One row per call, the reasons for each fallback under its row, then the summary."""
    rows = []
    for i, v in enumerate(verdicts, 1):
        p = v.problem
        params = (f"s{_pair_text(p.stride)} p{_pair_text(p.padding)} d{_pair_text(p.dilation)} "
                  f"g{p.groups} dg{p.deformable_groups}")
        extras = ",".join(x for x, on in (("mask", p.has_mask), ("bias", p.has_bias)) if on) or "-"
        backend = (v.chosen or "NONE") + (" (fallback)" if v.is_fallback else "")
        rows.append([str(i), v.layer, f"({p.batch},{p.in_channels},{p.height},{p.width})",
                     f"({p.out_channels},{p.in_channels // p.groups},{p.kernel_h},{p.kernel_w})",
                     f"({p.batch},{p.out_channels},{p.out_height},{p.out_width})", params, extras,
                     str(p.dtype).replace("torch.", ""), backend])
    lines = list(title)
    table = _table(("#", "layer", "x", "weight", "out", "params", "inputs", "dtype", "backend"), rows)
    lines += table[:2]
    for v, line in zip(verdicts, table[2:]):
        lines.append(line)
        for backend, rule, message in v.reasons():
            lines.append(f"      {backend} not used: [{rule}] {message}")
    counts = _backend_counts(verdicts)
    fallbacks = [v for v in verdicts if v.is_fallback]
    lines.append("")
    if not verdicts:
        lines.append("Summary: no deformable convolution call was recorded (does the model call mx_dcn?)")
    else:
        preferred = verdicts[0].preferred
        lines.append(f"Summary: {len(verdicts)} call{'s' if len(verdicts) != 1 else ''}: "
                     + ", ".join(f"{n} -> {b}" for b, n in counts.items())
                     + f"; {len(fallbacks)} leave{'s' if len(fallbacks) == 1 else ''} the preferred "
                       f"backend '{preferred}'.")
    return "\n".join(lines)


def _target_line(args, assumed: bool) -> str:
    from .registry import chain_for

    soc = f" (soc {args.soc})" if args.soc else ""
    note = (" -- backends missing on this machine are assumed installed on the target"
            if assumed else " -- availability as on this machine")
    return f"Target: {args.device}{soc}, chain {' -> '.join(chain_for(args.device))}{note}"


def cmd_check(args) -> int:
    from . import model_check

    model_check.ensure_device_runtime(args.device)
    if args.model:
        if args.weight_shape is not None:
            raise UsageError("--weight-shape describes a single call; with --model give only --input-shape")
        if not args.input_shape:
            raise UsageError("--model needs --input-shape (once per model input)")
        try:
            factory = model_check.load_factory(args.model)
        except ValueError as e:
            raise UsageError(str(e)) from None
        import torch

        try:
            model = factory()
        except Exception as e:  # the user's factory failed: say where, without a traceback
            print(f"{PROG} check: error: {args.model}() failed{_user_frame(e)}: {type(e).__name__}: {e}",
                  file=sys.stderr)
            return 1
        if not isinstance(model, torch.nn.Module):
            raise UsageError(f"--model: {args.model} returned {type(model).__name__}, expected an nn.Module")
        model = model.to(args.dtype)
        inputs = model_check.make_inputs(args.input_shape, args.dtype)
        try:
            result = model_check.check_model(model, inputs, args.device, args.soc, args.trace_device,
                                             args.availability)
        except Exception as e:
            where = _user_frame(e)
            print(f"{PROG} check: error: running {args.model} on {args.trace_device} failed{where}: "
                  f"{type(e).__name__}: {e}", file=sys.stderr)
            if args.trace_device == "meta":
                print(f"{PROG} check: hint: a model that needs real values can be traced on CPU with "
                      "--trace-device cpu", file=sys.stderr)
            return 1
        verdicts, assumed = result.calls, result.assumed_available
        shapes = " ".join("(" + ",".join(map(str, s)) + ")" for s in args.input_shape)
        title = [_target_line(args, assumed),
                 f"Model: {args.model}, input {shapes}, traced on {args.trace_device}", ""]
    else:
        if args.input_shape is None or args.weight_shape is None:
            raise UsageError("give --model package.module:factory, or one call as --input-shape N,C,H,W "
                             "--weight-shape Cout,Cin_g,kh,kw")
        if len(args.input_shape) != 1 or len(args.input_shape[0]) != 4:
            raise UsageError("a single call takes one --input-shape N,C,H,W")
        try:
            v = model_check.check_call(args.input_shape[0], args.weight_shape, args.stride, args.padding,
                                       args.dilation, args.groups, args.deformable_groups, args.dtype,
                                       mask=not args.no_mask, bias=not args.no_bias, device=args.device,
                                       soc=args.soc, availability=args.availability)
        except (TypeError, ValueError) as e:
            raise UsageError(f"invalid call: {e}") from None
        verdicts, assumed = [v], v.assumed_available
        title = [_target_line(args, assumed), ""]
    fallbacks = [v for v in verdicts if v.is_fallback]
    status = 1 if (args.fail_on_fallback and fallbacks) else 0
    if args.json:
        _emit_json({"target": {"device": args.device, "soc": args.soc, "assumed_available": assumed},
                    "model": args.model, "calls": [v.to_dict() for v in verdicts],
                    "summary": _backend_counts(verdicts),
                    "fallbacks": len(fallbacks), "exit_status": status})
    else:
        print(format_check(verdicts, title))
    if status:
        print(f"{PROG} check: {len(fallbacks)} call(s) would leave the preferred backend "
              "(--fail-on-fallback)", file=sys.stderr)
    return status


def _user_frame(exc: BaseException) -> str:
    """' at file:line in func' for the innermost traceback frame outside torch and mx_dcn."""
    import torch

    skip = (os.path.dirname(os.path.abspath(torch.__file__)), os.path.dirname(os.path.abspath(__file__)))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith(skip)]
    return f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""


# --------------------------------------------------------------------------- regress


def _regress_finish(args, results, extra: dict) -> int:
    from . import regress

    status = regress.exit_status(results)
    if args.json:
        _emit_json({**extra, "results": [r.to_dict() for r in results], "exit_status": status})
    else:
        print(regress.format_results(results))
        for k, v in extra.items():
            print(f"{k}: {v}")
    if status:
        bad = [f for r in results for f in r.failures]
        print(f"{PROG} regress: FAILED" + (f" ({len(bad)} mismatch(es); first: {bad[0]})" if bad else
                                          " (no case ran)"), file=sys.stderr)
    return status


def cmd_regress(args) -> int:
    from . import regress

    _prepare_device(args.device)
    progress_total = None
    if args.action in ("run", "record"):
        try:
            cases = regress.select_cases(args.cases)
        except ValueError as e:
            raise UsageError(str(e)) from None
        progress_total = len(cases) * len(args.dtype)
    if args.action == "verify":
        try:
            manifest = regress.load_manifest(args.dir)
        except (ValueError, OSError) as e:
            raise UsageError(str(e)) from None
        progress_total = sum(1 for e in manifest["cases"] if not args.cases or e["case"] in args.cases)
    progress = regress.Progress(progress_total, enabled=not args.no_progress)
    try:
        if args.action == "run":
            results = regress.run_suite(cases, args.dtype, args.device, args.backend, args.seed, progress)
            extra = {"device": args.device, "backend": args.backend or "auto"}
        elif args.action == "record":
            results, manifest = regress.record_suite(args.out, cases, args.dtype, args.device, args.backend,
                                                     args.seed, progress, check_oracle=not args.no_oracle)
            extra = {"recorded": os.path.join(args.out, regress.MANIFEST)}
        else:
            results, manifest = regress.verify_dir(args.dir, args.device, args.backend, args.cases, progress)
            rec = manifest["environment"]
            extra = {"verified": f"{args.dir} (recorded on {manifest['device']} by {rec.get('host')} "
                                 f"at {rec.get('date')}) against {args.device}"}
    except ValueError as e:
        raise UsageError(str(e)) from None
    finally:
        progress.close()
    return _regress_finish(args, results, extra)


# --------------------------------------------------------------------------- bench


def cmd_bench(args) -> int:
    if importlib.util.find_spec("mx_dcn.bench") is None:
        print(f"{PROG} bench: error: mx_dcn.bench is not part of this installation", file=sys.stderr)
        return 1
    from . import bench

    if args.gemm and args.plot:
        raise UsageError("--plot draws the convolution table; it does not combine with --gemm")
    if args.plot:
        if importlib.util.find_spec("matplotlib") is None:
            raise UsageError("--plot needs matplotlib: pip install matplotlib (or mx_dcn[plot])")
        if not args.plot.lower().endswith(".png"):
            raise UsageError(f"--plot: expected a .png file name, got {args.plot!r}")
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
            _emit_json(rows)
        else:
            print(bench.format_gemm_table(rows))
        return 0
    progress = regress_progress = None
    if not args.json:
        from .regress import Progress

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
        _emit_json(results)
    else:
        print(bench.format_table(results))
    if args.plot:
        plot_bench(results, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def plot_bench(results: List[dict], path: str) -> None:
    """Two panels (forward, forward+backward): time per shape for dense conv, mx_dcn and each peer
    measured, each bar labelled with its multiple of the dense conv. Linear axis from 0, switched to
    log only when the times span more than 20x (so small bars stay visible, never misleadingly)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [("dense conv (F.conv2d)", "dense"), ("mx_dcn", "mxdcn"), ("torchvision", "torchvision")]
    series = [(label, key) for label, key in series
              if any(r.get(f"{key}_fwd_ms") is not None for r in results)]
    shapes = [str(r["shape"]) for r in results]
    fig, axes = plt.subplots(2, 1, figsize=(max(7, 0.6 * len(shapes) * len(series) + 3), 8.5))
    width = 0.8 / len(series)
    for ax, (phase, suffix) in zip(axes, (("forward", "fwd_ms"), ("forward + backward", "fwdbwd_ms"))):
        values = [r.get(f"{key}_{suffix}") for r in results for _, key in series]
        values = [v for v in values if v]
        for k, (label, key) in enumerate(series):
            for i, r in enumerate(results):
                y = r.get(f"{key}_{suffix}")
                if y is None:
                    continue
                x = i + (k - (len(series) - 1) / 2) * width
                ax.bar(x, y, width, color=f"C{k}", label=label if i == 0 else None)
                dense = r.get(f"dense_{suffix}")
                text = f"{y:.3g} ms" if key == "dense" else f"{y / dense:.1f}x" if dense else ""
                ax.annotate(text, (x, y), ha="center", va="bottom", fontsize=8)
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
        ax.set_title(phase, fontsize=11)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Deformable conv 3x3 fp32 vs the dense conv of the same shape\n"
                 "(label above a bar: its time / dense conv time)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- the parser


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions are wrapped here (by _wrap); epilogs keep their example layout."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=100)


def _wrap(text: str) -> str:
    import textwrap

    return textwrap.fill(text, width=98)


def _add_device(p, default="cpu", help_text="device to run on"):
    p.add_argument("--device", choices=DEVICES, default=default, help=f"{help_text} (default {default})")


def build_parser() -> argparse.ArgumentParser:
    from .registry import backend_names
    from .testing.cases import CASES

    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_Formatter,
        description=_wrap("mx_dcn deformable convolution: environment, constraint checks, cross-device "
                    "regression and benchmarks."),
        epilog="""examples:
  mx-dcn info                                   versions, devices, which backends can run here
  mx-dcn check --input-shape 2,96,64,64 --weight-shape 64,96,3,3 --padding 1 --device npu --soc Ascend910B2
  mx-dcn check --model mypkg.models:build --input-shape 1,3,512,512 --device npu --soc Ascend910B2
  mx-dcn regress run --device cpu
  mx-dcn regress record --out golden/ --device npu   then on another machine:
  mx-dcn regress verify golden/ --device cpu
  mx-dcn bench --quick --plot bench.png

'mx-dcn COMMAND --help' explains each command with more examples.
exit status: 0 ok, 1 check failed (fallback with --fail-on-fallback, mismatch), 2 usage error.""")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("info", formatter_class=_Formatter, help="versions, devices and backend availability",
                       description=_wrap("Show versions (mx_dcn, torch, torch_npu, CANN), devices this process "
                                   "sees, and every backend's availability with the reason when unavailable."),
                       epilog="examples:\n  mx-dcn info\n  mx-dcn info --json | python -c "
                              "\"import json,sys; print(json.load(sys.stdin)['backends'])\"")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "check", formatter_class=_Formatter,
        help="which kernel a call or every call of a model gets on a target, and why",
        description=_wrap("Judge deformable convolution calls against the backends' constraints for a target "
                    "device (no such hardware needed), either one call described by flags or every call "
                    "a model makes. A model is run once on the meta device (nothing is computed) with "
                    "hooks that record each call of the operator with the qualified name of the module "
                    "that made it -- calls through mx_dcn.nn layers and through the functional API alike."),
        epilog="""examples:
  one call, DCNv2 3x3 with bias, on Atlas A2:
    mx-dcn check --input-shape 2,96,64,64 --weight-shape 64,96,3,3 --padding 1 --device npu --soc Ascend910B2
  a DCNv1 call without bias, stride 2, two deformable groups, float16:
    mx-dcn check --input-shape 1,128,32,32 --weight-shape 128,128,3,3 --stride 2 --padding 1 \\
        --deformable-groups 2 --no-mask --no-bias --dtype float16 --device npu --soc Ascend910B2
  a whole model (a callable returning an nn.Module; the current directory is importable):
    mx-dcn check --model tests.models.three_dcn:build --input-shape 1,3,64,64 --device npu --soc Ascend910B2
  in CI, fail when any layer would leave the fastest kernel:
    mx-dcn check --model mypkg.net:build --input-shape 1,3,256,256 --device npu --soc Ascend910B2 --fail-on-fallback
  for scripts:
    mx-dcn check --model mypkg.net:build --input-shape 1,3,256,256 --device npu --json

availability: a target absent from this machine (an NPU checked on a laptop) is judged on constraints
only: its backends are assumed installed there (--availability auto, the default). --availability local
reports what this machine itself would run; --availability assume always assumes.""")
    p.add_argument("--model", metavar="MODULE:FACTORY",
                   help="a callable returning an nn.Module, e.g. mypkg.models:build_detector")
    p.add_argument("--input-shape", type=shape_any, action="append", metavar="N,C,H,W",
                   help="input shape; with --model, give it once per model input")
    p.add_argument("--weight-shape", type=shape4, metavar="Cout,Cin/g,kh,kw", help="weight shape (one call)")
    p.add_argument("--stride", type=pair, default=(1, 1), metavar="S|SH,SW", help="default 1")
    p.add_argument("--padding", type=pair, default=(0, 0), metavar="P|PH,PW", help="default 0")
    p.add_argument("--dilation", type=pair, default=(1, 1), metavar="D|DH,DW", help="default 1")
    p.add_argument("--groups", type=positive_int, default=1, metavar="G", help="default 1")
    p.add_argument("--deformable-groups", type=positive_int, default=1, metavar="DG", help="default 1")
    p.add_argument("--no-mask", action="store_true", help="DCNv1 (no modulation mask)")
    p.add_argument("--no-bias", action="store_true", help="no bias")
    p.add_argument("--dtype", type=dtype_one, default="float32",
                   help="float32 (default), float16, bfloat16, float64")
    _add_device(p, "npu", "target device type")
    p.add_argument("--soc", metavar="NAME", help="target chip, e.g. Ascend910B2 (Atlas A2)")
    p.add_argument("--availability", choices=("auto", "local", "assume"), default="auto",
                   help="how to treat backends missing on this machine (default auto, see below)")
    p.add_argument("--trace-device", choices=("meta", "cpu"), default="meta",
                   help="where the model runs for recording (default meta: nothing computed)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--fail-on-fallback", action="store_true",
                   help="exit 1 when any call would not get the target's preferred backend")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "regress", formatter_class=_Formatter, help="the case suite against the oracle; record and verify",
        description=_wrap("Cross-device regression with the shared case suite (kernel sizes, stride, padding, "
                    "dilation, groups, deformable groups, masks with zeros, offsets outside the image, "
                    "empty batch, and the calls mx_driving's NPU path gets wrong)."),
        epilog="""examples:
  mx-dcn regress run                                     every case on CPU against the float64 oracle
  mx-dcn regress run --device npu --dtype float32,float16
  mx-dcn regress run --backend portable --cases k3x3,stride2
  mx-dcn regress record --out golden_npu/ --device npu   inputs, outputs, gradients + manifest.json
  mx-dcn regress verify golden_npu/ --device cpu         same inputs here, compared within tolerance

'mx-dcn regress ACTION --help' for each action's flags.
cases: """ + _wrap(", ".join(c.name for c in CASES)).replace("\n", "\n       "))
    rsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _add_device(common)
    common.add_argument("--backend", choices=backend_names(),
                        help="force one backend (default: the registry's choice per case)")
    common.add_argument("--cases", type=name_list, metavar="A,B",
                        help="only these cases (default: the whole suite; names in 'mx-dcn regress --help')")
    common.add_argument("--json", action="store_true", help="machine-readable results on stdout")
    common.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    suite = argparse.ArgumentParser(add_help=False)
    suite.add_argument("--dtype", type=dtype_list, default="float32", metavar="DTYPES",
                       help="comma-separated, e.g. float32,float16 (default float32)")
    suite.add_argument("--seed", type=int, default=0, help="input generator seed (default 0)")

    r = rsub.add_parser("run", parents=[common, suite], formatter_class=_Formatter,
                        help="the suite against the float64 oracle",
                        description=_wrap("Run every case forward and backward on a device/backend and compare "
                                    "output and gradients with the float64 oracle computed on CPU."),
                        epilog="examples:\n  mx-dcn regress run\n  mx-dcn regress run --device cuda "
                               "--dtype float32,float16\n  mx-dcn regress run --backend portable --cases "
                               "k3x3,dg2 --json")
    r.set_defaults(func=cmd_regress)
    r = rsub.add_parser("record", parents=[common, suite], formatter_class=_Formatter,
                        help="run the suite and write inputs/outputs/gradients with a manifest",
                        description=_wrap("Run the suite (checking it against the oracle) and write one file per "
                                    "case (torch.save: inputs, output, gradients) and manifest.json "
                                    "(versions, host, date, device, backend, dtype, tolerances, checksums)."),
                        epilog="examples:\n  mx-dcn regress record --out golden/ --device npu\n"
                               "  mx-dcn regress record --out golden/ --dtype float32,float16 --no-oracle")
    r.add_argument("--out", required=True, metavar="DIR", help="directory to write (created if needed)")
    r.add_argument("--no-oracle", action="store_true", help="record without comparing with the oracle")
    r.set_defaults(func=cmd_regress)
    r = rsub.add_parser("verify", parents=[common], formatter_class=_Formatter,
                        help="rerun recorded inputs here and compare",
                        description=_wrap("Rerun every recorded case's inputs on this device/backend and compare "
                                    "output and gradients with the recording, within the manifest's "
                                    "tolerance for the recorded dtype. Exit 1 on any mismatch, naming case, "
                                    "tensor, error and index; a file changed since recording also fails."),
                        epilog="examples:\n  mx-dcn regress verify golden/\n  mx-dcn regress verify golden/ "
                               "--device npu --backend ascendc\n  mx-dcn regress verify golden/ --cases k3x3")
    r.add_argument("dir", metavar="DIR", help="a directory written by 'mx-dcn regress record'")
    r.set_defaults(func=cmd_regress)

    p = sub.add_parser(
        "bench", formatter_class=_Formatter, help="time mx_dcn against dense conv and installed peers",
        description=_wrap("Time forward and forward+backward of mx_dcn against the dense convolution of the same "
                    "shape (the floor) and torchvision when installed; print a table, JSON or a plot."),
        epilog="""examples:
  mx-dcn bench                          every shape, table on stdout
  mx-dcn bench --quick                  the cheapest shape, 2 repeats (a smoke test)
  mx-dcn bench --shapes NAME,NAME --repeats 20 --json > bench.json
  mx-dcn bench --plot bench.png         also draw time per shape (needs matplotlib)
  mx-dcn bench --gemm                   the tile products: mx_dcn's own GEMM against the BLAS
Run it on an idle machine: other processes inflate the times.""")
    p.add_argument("--shapes", type=name_list, metavar="A,B",
                   help="only these shapes (default: all; with --gemm, the four target shapes)")
    p.add_argument("--repeats", type=positive_int, help="timed repetitions per measurement")
    p.add_argument("--quick", action="store_true",
                   help="the cheapest shape only (unless --shapes) and 2 repeats (unless --repeats)")
    p.add_argument("--no-torchvision", action="store_true", help="do not time torchvision even if installed")
    p.add_argument("--threads", type=positive_int, help="torch.set_num_threads before measuring")
    p.add_argument("--json", action="store_true", help="results as JSON on stdout")
    p.add_argument("--plot", metavar="FILE.png", help="write a bar chart of time per shape")
    p.add_argument("--gemm", action="store_true",
                   help="instead, time the forward's tile products (the kernel's tile rows, one thread) by "
                        "mx_dcn's own GEMM and by the BLAS, in GFLOP/s: what MX_DCN_CPU_GEMM chooses between "
                        "(default shapes: the four targets)")
    p.set_defaults(func=cmd_bench)
    return parser


def _package_version() -> str:
    from . import __version__

    return __version__


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UsageError as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mx-dcn info | head`
        sys.stderr.close()
        return 0
