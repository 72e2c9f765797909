"""What every `mx-dcn` command shares: argument types, the usage error, output helpers."""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import traceback
from typing import List, Sequence, Tuple

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
    from ..problem import parse_dtype

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



def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(f"{str(c):<{w}}" for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(headers), line("-" * w for w in widths)] + [line(r) for r in rows]


def emit_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def output_file(path: str, option: str) -> None:
    """UsageError unless `path` can be written. Checked before any work, so that a long run cannot end
    in an error about where to put its result."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{option}: {path!r} is a directory; expected a file name")
    if not os.path.isdir(parent):
        raise UsageError(f"{option}: directory {parent!r} does not exist (for {path!r})")
    if not os.access(parent, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"{option}: {path!r} is not writable")


def output_dir(path: str, option: str) -> None:
    """Create directory `path` (and its parents) now, or UsageError saying why it cannot be."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{option}: cannot create directory {path!r}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise UsageError(f"{option}: directory {path!r} is not writable")


def prepare_device(device: str) -> None:
    """Make `device` usable for running kernels here, or raise UsageError saying why not."""
    from ..model_check import ensure_device_runtime
    from ..problem import device_present

    ensure_device_runtime(device)
    if not device_present(device):
        hint = {"npu": "torch_npu is not installed or sees no NPU",
                "cuda": "this torch has no CUDA or sees no GPU"}.get(device, "")
        raise UsageError(f"device '{device}' is not available on this machine ({hint}); "
                         "use 'mx-dcn check' to judge a target you do not have")


# --------------------------------------------------------------------------- info


def user_frame(exc: BaseException) -> str:
    """' at file:line in func' for the innermost traceback frame outside torch and mx_dcn."""
    import torch

    skip = (os.path.dirname(os.path.abspath(torch.__file__)), os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith(skip)]
    return f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""


# --------------------------------------------------------------------------- regress


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions are wrapped here (by _wrap); epilogs keep their example layout."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=100)


def wrap(text: str) -> str:
    return textwrap.fill(text, width=98)


def add_device(p, default="cpu", help_text="device to run on"):
    p.add_argument("--device", choices=DEVICES, default=default, help=f"{help_text} (default {default})")

