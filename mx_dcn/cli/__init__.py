"""The `mx-dcn` command line (also `python -m mx_dcn`): info, check, regress, bench -- one module per
command in this package, each with its `register(subparsers)`; argument types and output helpers in
args.py.

Exit codes: 0 success; 1 a check failed (a fallback under --fail-on-fallback, a regression mismatch,
a model that could not run); 2 a usage error (bad flag or value, unknown model, unusable device).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import bench, check, info, regress
from .args import PROG, Formatter, UsageError, wrap

COMMANDS = (info, check, regress, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=Formatter,
        description=wrap("mx_dcn deformable convolution: environment, constraint checks, cross-device "
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
    for command in COMMANDS:
        command.register(sub)
    return parser


def _package_version() -> str:
    from .. import __version__

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
