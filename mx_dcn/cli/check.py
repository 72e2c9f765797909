"""`mx-dcn check`: which kernel one call, or every call of a model, gets on a target, and why."""
from __future__ import annotations

import sys
from typing import List

from . import model_source
from .args import (PROG, Formatter, UsageError, add_device, dtype_one, emit_json, pair, positive_int, shape4,
                   table, wrap)


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
    rendered = table(("#", "layer", "x", "weight", "out", "params", "inputs", "dtype", "backend"), rows)
    lines += rendered[:2]
    for v, line in zip(verdicts, rendered[2:]):
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
    from ..registry import chain_for

    soc = f" (soc {args.soc})" if args.soc else ""
    note = (" -- backends missing on this machine are assumed installed on the target"
            if assumed else " -- availability as on this machine")
    return f"Target: {args.device}{soc}, chain {' -> '.join(chain_for(args.device))}{note}"


def cmd_check(args) -> int:
    from .. import model_check

    if args.soc is not None and args.device != "npu":
        raise UsageError(f"--soc {args.soc} names an NPU chip: it needs --device npu, got --device {args.device}")
    model_check.ensure_device_runtime(args.device)
    if args.model or args.config:
        if args.weight_shape is not None:
            raise UsageError("--weight-shape describes a single call; with --model/--config give only --input-shape")
        with model_source.opened(args, args.dtype, "check") as source:
            if source is None:   # building the model failed; the reason is printed
                return 1
            return _check_model(args, source)
    return _check_one_call(args)


def _check_model(args, source) -> int:
    from .. import model_check

    try:
        result = model_check.check_model(source.model, source.inputs, args.device, args.soc, args.trace_device,
                                         args.availability)
    except Exception as e:
        model_source.report_trace_failure("check", source, args.trace_device, e)
        return 1
    title = [_target_line(args, result.assumed_available),
             f"Model: {source.label}, {source.inputs_text}, traced on {args.trace_device}"]
    if source.integration_note:
        title.append(source.integration_note)
    return _report(args, result.calls, result.assumed_available, title + [""])


def _check_one_call(args) -> int:
    from .. import model_check

    if args.input_shape is None or args.weight_shape is None:
        raise UsageError("give --model package.module:factory or --config file.py, or one call as "
                         "--input-shape N,C,H,W --weight-shape Cout,Cin_g,kh,kw")
    if len(args.input_shape) != 1 or len(args.input_shape[0]) != 4:
        raise UsageError("a single call takes one --input-shape N,C,H,W")
    try:
        v = model_check.check_call(args.input_shape[0], args.weight_shape, args.stride, args.padding,
                                   args.dilation, args.groups, args.deformable_groups, args.dtype,
                                   mask=not args.no_mask, bias=not args.no_bias, device=args.device,
                                   soc=args.soc, availability=args.availability)
    except (TypeError, ValueError) as e:
        raise UsageError(f"invalid call: {e}") from None
    return _report(args, [v], v.assumed_available, [_target_line(args, v.assumed_available), ""])


def _report(args, verdicts, assumed: bool, title: List[str]) -> int:
    fallbacks = [v for v in verdicts if v.is_fallback]
    status = 1 if (args.fail_on_fallback and fallbacks) else 0
    if args.json:
        emit_json({"target": {"device": args.device, "soc": args.soc, "assumed_available": assumed},
                   "model": args.model, "config": args.config, "calls": [v.to_dict() for v in verdicts],
                   "summary": _backend_counts(verdicts),
                   "fallbacks": len(fallbacks), "exit_status": status})
    else:
        print(format_check(verdicts, title))
    if status:
        print(f"{PROG} check: {len(fallbacks)} call(s) would leave the preferred backend "
              "(--fail-on-fallback)", file=sys.stderr)
    return status


def register(sub) -> None:
    p = sub.add_parser(
        "check", formatter_class=Formatter,
        help="which kernel a call or every call of a model gets on a target, and why",
        description=wrap("Judge deformable convolution calls against the backends' constraints for a target "
                    "device (no such hardware needed), either one call described by flags or every call "
                    "a model makes. A copy of the model is run once on the meta device (nothing is computed; "
                    "your model object is not changed) with hooks that record each call of the operator "
                    "with the qualified name of the module that made it -- calls through mx_dcn.nn layers, "
                    "the functional API and, with mmengine in use, mmcv.ops layers alike."),
        epilog="""examples:
  one call, DCNv2 3x3 with bias, on Atlas A2:
    mx-dcn check --input-shape 2,96,64,64 --weight-shape 64,96,3,3 --padding 1 --device npu --soc Ascend910B2
  a DCNv1 call without bias, stride 2, two deformable groups, float16:
    mx-dcn check --input-shape 1,128,32,32 --weight-shape 128,128,3,3 --stride 2 --padding 1 \\
        --deformable-groups 2 --no-mask --no-bias --dtype float16 --device npu --soc Ascend910B2
  a whole model (a callable returning an nn.Module; the current directory is importable):
    mx-dcn check --model tests.models.three_dcn:build --input-shape 1,3,64,64 --device npu --soc Ascend910B2
  a factory returning (model, example_inputs), e.g. a detector taking a dict (mmdet3d style):
    mx-dcn check --model tests.models.mm_resnet_dcn:build_with_inputs --device npu --soc Ascend910B2
  an mmdet/mmdet3d config (mmcv's 'DCNv2'/'DCN' layers are checked through mx_dcn.use_in_mmcv()):
    mx-dcn check --config configs/fcos3d_r101_dcn.py --input-shape 1,3,256,256 --device npu --soc Ascend910B2
  in CI, fail when any layer would leave the fastest kernel:
    mx-dcn check --model mypkg.net:build --input-shape 1,3,256,256 --device npu --soc Ascend910B2 --fail-on-fallback
  for scripts:
    mx-dcn check --model mypkg.net:build --input-shape 1,3,256,256 --device npu --json

availability: a target absent from this machine (an NPU checked on a laptop) is judged on constraints
only: its backends are assumed installed there (--availability auto, the default). --availability local
reports what this machine itself would run; --availability assume always assumes.""")
    model_source.add_arguments(p)
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
    add_device(p, "npu", "target device type")
    p.add_argument("--soc", metavar="NAME", help="target chip, e.g. Ascend910B2 (Atlas A2)")
    p.add_argument("--availability", choices=("auto", "local", "assume"), default="auto",
                   help="how to treat backends missing on this machine (default auto, see below)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--fail-on-fallback", action="store_true",
                   help="exit 1 when any call would not get the target's preferred backend")
    p.set_defaults(func=cmd_check)
