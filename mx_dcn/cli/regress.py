"""`mx-dcn regress`: the case suite against the float64 oracle; record on one device, verify on another."""
from __future__ import annotations

import argparse
import os
import sys

from . import model_source
from .args import (PROG, Formatter, UsageError, add_device, dtype_list, emit_json, name_list, output_dir,
                   prepare_device, wrap)

DEFAULT_DTYPE = "float32"


def _regress_finish(args, results, extra: dict) -> int:
    from .. import regress

    status = regress.exit_status(results)
    if args.json:
        emit_json({**extra, "results": [r.to_dict() for r in results], "exit_status": status})
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
    from .. import regress

    prepare_device(args.device)
    if args.action == "record":
        output_dir(args.out, "--out")
    if args.action == "record" and (args.model or args.config):
        return _record_model(args)
    if args.action in ("run", "record") and args.dtype is None:
        args.dtype = dtype_list(DEFAULT_DTYPE)
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
    if args.action == "record":
        output_dir(args.out, "--out")
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


def _record_model(args) -> int:
    """regress record --model/--config: the model's own calls, each in its dtype (or --dtype's)."""
    from .. import model_check, regress

    if args.cases:
        raise UsageError("--cases selects cases of the shared suite; with --model/--config the model's own "
                         "calls are recorded")
    dtype = args.dtype[0] if args.dtype and len(args.dtype) == 1 else None
    with model_source.opened(args, dtype, "regress") as source:
        if source is None:
            return 1
        try:
            check = model_check.check_model(source.model, source.inputs, device=args.device,
                                            trace_device=args.trace_device)
        except Exception as e:
            model_source.report_trace_failure("regress", source, args.trace_device, e)
            return 1
    calls = regress.model_cases([(c.layer, c.problem) for c in check.calls])
    if not calls:
        raise UsageError(f"{source.label} made no deformable convolution call (does it use mx_dcn, or mmcv "
                         "with mx_dcn.use_in_mmcv()?)")
    progress = regress.Progress(len(calls) * len(args.dtype or [None]), enabled=not args.no_progress)
    try:
        results, _ = regress.record_suite(args.out, [], args.dtype or [], args.device, args.backend, args.seed,
                                          progress, check_oracle=not args.no_oracle, model_calls=calls,
                                          source=f"model {source.label}, {source.inputs_text}")
    finally:
        progress.close()
    return _regress_finish(args, results, {"recorded": os.path.join(args.out, regress.MANIFEST),
                                           "model": f"{source.label}: {len(check.calls)} calls, "
                                                    f"{len(calls)} distinct"})


def register(sub) -> None:
    from ..registry import backend_names
    from ..testing.cases import CASES

    p = sub.add_parser(
        "regress", formatter_class=Formatter, help="the case suite against the oracle; record and verify",
        description=wrap("Cross-device regression with the shared case suite (kernel sizes, stride, padding, "
                    "dilation, groups, deformable groups, masks with zeros, offsets outside the image, "
                    "empty batch, and the calls mx_driving's NPU path gets wrong)."),
        epilog="""examples:
  mx-dcn regress run                                     every case on CPU against the float64 oracle
  mx-dcn regress run --device npu --dtype float32,float16
  mx-dcn regress run --backend portable --cases k3x3,stride2
  mx-dcn regress record --out golden_npu/ --device npu   inputs, outputs, gradients + manifest.json
  mx-dcn regress verify golden_npu/ --device cpu         same inputs here, compared within tolerance

'mx-dcn regress ACTION --help' for each action's flags.
cases: """ + wrap(", ".join(c.name for c in CASES)).replace("\n", "\n       "))
    rsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    add_device(common)
    common.add_argument("--backend", choices=backend_names(),
                        help="force one backend (default: the registry's choice per case)")
    common.add_argument("--cases", type=name_list, metavar="A,B",
                        help="only these cases (default: the whole suite; names in 'mx-dcn regress --help')")
    common.add_argument("--json", action="store_true", help="machine-readable results on stdout")
    common.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    suite = argparse.ArgumentParser(add_help=False)
    suite.add_argument("--dtype", type=dtype_list, default=None, metavar="DTYPES",
                       help="comma-separated, e.g. float32,float16 (default float32; with --model, each "
                            "call's own dtype)")
    suite.add_argument("--seed", type=int, default=0, help="input generator seed (default 0)")

    r = rsub.add_parser("run", parents=[common, suite], formatter_class=Formatter,
                        help="the suite against the float64 oracle",
                        description=wrap("Run every case forward and backward on a device/backend and compare "
                                    "output and gradients with the float64 oracle computed on CPU."),
                        epilog="examples:\n  mx-dcn regress run\n  mx-dcn regress run --device cuda "
                               "--dtype float32,float16\n  mx-dcn regress run --backend portable --cases "
                               "k3x3,dg2 --json")
    r.set_defaults(func=cmd_regress)
    r = rsub.add_parser("record", parents=[common, suite], formatter_class=Formatter,
                        help="run the suite and write inputs/outputs/gradients with a manifest",
                        description=wrap("Run the suite (checking it against the oracle) and write one file per "
                                    "case (torch.save: inputs, output, gradients) and manifest.json "
                                    "(versions, host, date, device, backend, dtype, tolerances, checksums). "
                                    "With --model or --config, record your own model's deformable "
                                    "convolution calls instead: the model runs once (on the meta device by "
                                    "default) to find them, and each distinct call is recorded at its "
                                    "shapes, parameters and dtype with inputs generated from --seed."),
                        epilog="examples:\n  mx-dcn regress record --out golden/ --device npu\n"
                               "  mx-dcn regress record --out golden/ --dtype float32,float16 --no-oracle\n"
                               "  mx-dcn regress record --out golden_model/ --device npu --model mypkg.net:build "
                               "--input-shape 1,3,256,704\n"
                               "  mx-dcn regress record --out golden_model/ --config configs/my_det.py "
                               "--input-shape 1,3,512,512 --no-oracle\n"
                               "  then, on another machine: mx-dcn regress verify golden_model/ --device cpu\n"
                               "the float64 oracle is a direct loop: on a full-size model's calls it takes "
                               "minutes; --no-oracle records without it")
    r.add_argument("--out", required=True, metavar="DIR", help="directory to write (created if needed)")
    model_source.add_arguments(r)
    r.add_argument("--no-oracle", action="store_true", help="record without comparing with the oracle")
    r.set_defaults(func=cmd_regress)
    r = rsub.add_parser("verify", parents=[common], formatter_class=Formatter,
                        help="rerun recorded inputs here and compare",
                        description=wrap("Rerun every recorded case's inputs on this device/backend and compare "
                                    "output and gradients with the recording, within the manifest's "
                                    "tolerance for the recorded dtype. Exit 1 on any mismatch, naming case, "
                                    "tensor, error and index; a file changed since recording also fails."),
                        epilog="examples:\n  mx-dcn regress verify golden/\n  mx-dcn regress verify golden/ "
                               "--device npu --backend ascendc\n  mx-dcn regress verify golden/ --cases k3x3")
    r.add_argument("dir", metavar="DIR", help="a directory written by 'mx-dcn regress record'")
    r.set_defaults(func=cmd_regress)
