"""Which kernel every deformable convolution of a model gets on a target device, and why.

The model runs once (on the meta device by default, so no kernel and no real memory is used) while a
recorder notes every call of the operator with the qualified name of the module that made it. Each
recorded call is then judged by the registry for the declared target (e.g. device "npu",
soc "Ascend910B2"), which needs no such hardware here.

How calls are caught, without editing the operator: every entry point (the functional API,
`ModulatedDeformConv2dFunction.apply`, mx_dcn's nn modules, which call them) validates the call with
`describe` and then asks `mx_dcn.registry.resolve` for a backend. For the duration of the check,
`resolve` is replaced by a recorder that notes the `Problem` and returns a backend that only produces
an output of the right shape (meta trace) or runs the real dispatch (CPU trace). Forward hooks on
every submodule keep a stack of the modules being executed; the innermost one names the call.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import importlib
import importlib.util
import os
import sys
import threading
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.utils._pytree as pytree

from . import registry
from .backends.base import Backend
from .problem import Problem, check_soc, describe, device_present, parse_dtype

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_patch_lock = threading.RLock()   # re-entrant: check_model may run inside record_calls


# --------------------------------------------------------------------------- judging one call


@dataclasses.dataclass(frozen=True)
class CallVerdict:
    """One call of the operator judged for the target."""

    layer: str                 # qualified module name, e.g. "neck.dcn" ("(model)" for the root)
    module: str                # class name of that module ("" for a single call)
    site: str                  # file:line of the user code that made the call
    problem: Problem           # as declared for the target (device_type, soc, dtype)
    report: registry.SelectionReport
    chosen: Optional[str]      # what the target would run
    assumed_available: bool    # True: backends unavailable *here* were assumed present on the target

    @property
    def preferred(self) -> str:
        return self.report.preferred

    @property
    def is_fallback(self) -> bool:
        return self.chosen != self.preferred

    def reasons(self) -> List[Tuple[str, str, str]]:
        """(backend, rule, message) for every backend ahead of the chosen one in the chain."""
        out = []
        for name in self.report.chain:
            if name == self.chosen:
                break
            verdict = self.report.backends[name]
            if not verdict.available and not verdict.assumed:
                out.append((name, "unavailable", verdict.reason))
            for v in verdict.violations:
                out.append((name, v.rule, v.message))
        return out

    def to_dict(self) -> dict:
        p = self.problem
        return {
            "layer": self.layer, "module": self.module, "site": self.site,
            "x": [p.batch, p.in_channels, p.height, p.width],
            "weight": [p.out_channels, p.in_channels // p.groups, p.kernel_h, p.kernel_w],
            "out": [p.batch, p.out_channels, p.out_height, p.out_width],
            "stride": list(p.stride), "padding": list(p.padding), "dilation": list(p.dilation),
            "groups": p.groups, "deformable_groups": p.deformable_groups,
            "mask": p.has_mask, "bias": p.has_bias, "dtype": str(p.dtype).replace("torch.", ""),
            "chosen": self.chosen, "preferred": self.preferred, "fallback": self.is_fallback,
            "reasons": [{"backend": b, "rule": r, "message": m} for b, r, m in self.reasons()],
            "backends": {name: {"available_here": v.available, "assumed_on_target": v.assumed,
                                "reason": v.reason, "in_chain": v.in_chain,
                                "violations": [{"rule": x.rule, "message": x.message} for x in v.violations]}
                         for name, v in self.report.backends.items()},
        }


def ensure_device_runtime(device_type: str) -> None:
    """Import torch_npu when the target is an NPU and it is installed, so that `torch.npu` exists and
    the registry can tell whether an NPU is present (mx_dcn itself never imports it on import)."""
    if device_type == "npu" and importlib.util.find_spec("torch_npu") is not None:
        try:
            import torch_npu  # noqa: F401
        except Exception:  # a broken install means: no usable NPU here; the check still runs
            pass


def as_target(problem: Problem, device: str, soc: Optional[str], availability: str = "auto") -> Problem:
    """`problem` re-declared for the target. availability: 'auto' assumes the target's backends are
    installed when the target device is absent here (the registry's rule for declared targets),
    'assume' always does, 'local' never does (what this machine would run)."""
    check_soc(device, soc)
    return dataclasses.replace(problem, device_type=device, soc=soc,
                               declared_target=assumes_backends(device, availability))


def assumes_backends(device: str, availability: str = "auto") -> bool:
    """Whether backends missing on this machine count as installed on the target (see as_target)."""
    if availability not in ("auto", "local", "assume"):
        raise ValueError(f"availability: expected 'auto', 'local' or 'assume', got {availability!r}")
    return {"auto": not device_present(device), "assume": True, "local": False}[availability]


def judge(problem: Problem, layer: str = "(call)", module: str = "", site: str = "") -> CallVerdict:
    """Evaluate the registry for `problem` (no kernel runs)."""
    report = registry.select(problem)
    return CallVerdict(layer, module, site, problem, report, report.chosen, problem.declared_target)


def check_call(input_shape: Sequence[int], weight_shape: Sequence[int], stride=1, padding=0, dilation=1,
               groups: int = 1, deformable_groups: int = 1, dtype="float32", mask: bool = True,
               bias: bool = True, device: str = "cpu", soc: Optional[str] = None,
               availability: str = "auto") -> CallVerdict:
    """Judge one call described by shapes (meta tensors: nothing is allocated or run)."""
    dt = parse_dtype(dtype)
    x = torch.empty(tuple(input_shape), dtype=dt, device="meta")
    w = torch.empty(tuple(weight_shape), dtype=dt, device="meta")
    if x.dim() != 4 or w.dim() != 4:
        raise ValueError(f"input and weight shapes must have 4 values, got {tuple(input_shape)} and "
                         f"{tuple(weight_shape)}")
    # Offset/mask sizes follow from the other arguments; describe() validates all of them.
    kh, kw = w.shape[2], w.shape[3]
    (sh, sw), (ph, pw), (dh, dw) = (_pair(stride), _pair(padding), _pair(dilation))
    if min(sh, sw, dh, dw) >= 1 and min(ph, pw) >= 0:
        ho = (x.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (x.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    else:  # describe() names the bad argument
        ho = wo = 1
    taps = deformable_groups * kh * kw if isinstance(deformable_groups, int) and deformable_groups > 0 else 1
    offset = torch.empty((x.shape[0], 2 * taps, max(ho, 0), max(wo, 0)), dtype=dt, device="meta")
    m = torch.empty((x.shape[0], taps, max(ho, 0), max(wo, 0)), dtype=dt, device="meta") if mask else None
    b = torch.empty((w.shape[0],), dtype=dt, device="meta") if bias else None
    problem = describe(x, offset, m, w, b, stride, padding, dilation, groups, deformable_groups)
    return judge(as_target(problem, device, soc, availability))


def _pair(v) -> Tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    return (v[0], v[0]) if len(v) == 1 else (v[0], v[1])


# --------------------------------------------------------------------------- recording a model


@dataclasses.dataclass(frozen=True)
class RecordedCall:
    layer: str
    module: str
    site: str
    problem: Problem           # as traced (device of the trace)


class _ShapeOnlyBackend(Backend):
    """Stands in for the kernel during a meta trace: an output of the right shape, nothing computed."""

    name = "shape-only"

    def run(self, problem, x, offset, mask, weight, bias):
        return torch.empty((problem.batch, problem.out_channels, problem.out_height, problem.out_width),
                           dtype=x.dtype, device=x.device)


def _call_site() -> str:
    """file:line of the innermost frame outside mx_dcn and torch: the user code that made the call."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not (filename.startswith(_PACKAGE_DIR + os.sep) or filename.startswith(_TORCH_DIR + os.sep)):
            rel = os.path.relpath(filename)
            return f"{filename if rel.startswith('..') else rel}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


@contextlib.contextmanager
def record_calls(model: Optional[torch.nn.Module] = None, run_kernels: bool = False):
    """Within the block, every call of the operator made by this thread is appended to the yielded
    list as a RecordedCall. `model`'s submodules get hooks that name the calls; `run_kernels` False
    makes every such call return an uncomputed output of the right shape (for meta tensors). Other
    threads' calls are neither recorded nor changed."""
    calls: List[RecordedCall] = []
    stack: List[Tuple[str, str]] = []
    handles = []
    if model is not None:
        for name, module in model.named_modules():
            label = name or "(model)"

            def push(mod, args, _label=label):
                stack.append((_label, type(mod).__name__))

            def pop(mod, args, output):
                if stack:
                    stack.pop()

            handles.append(module.register_forward_pre_hook(push))
            handles.append(module.register_forward_hook(pop, always_call=True))

    original = registry.resolve
    shape_only = _ShapeOnlyBackend()
    owner = threading.get_ident()

    def recording_resolve(problem: Problem):
        if threading.get_ident() != owner:   # the swap is process-wide; the recording is not
            return original(problem)
        layer, module = stack[-1] if stack else ("(top level)", "")
        calls.append(RecordedCall(layer, module, _call_site(), problem))
        if run_kernels:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the check reports fallbacks itself
                return original(problem)
        return shape_only

    with _patch_lock:
        registry.resolve = recording_resolve
        try:
            yield calls
        finally:
            registry.resolve = original
            for h in handles:
                h.remove()


def load_factory(spec: str) -> Callable[[], torch.nn.Module]:
    """'package.module:factory' -> the callable. The current directory is importable, as with
    `python -m`, so a model next to the user's scripts can be named."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model: expected 'package.module:factory', got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"--model: cannot import module {module_name!r}: {e}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--model: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"--model: {spec!r} is not callable")
    return obj


@dataclasses.dataclass
class ModelCheck:
    calls: List[CallVerdict]
    device: str
    soc: Optional[str]
    trace_device: str
    assumed_available: bool

    def summary(self) -> Dict[str, int]:
        """backend -> number of calls it would get."""
        return dict(collections.Counter(c.chosen or "none" for c in self.calls))

    @property
    def fallbacks(self) -> List[CallVerdict]:
        return [c for c in self.calls if c.is_fallback]


def trace_copy(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """A structural copy of `model` whose parameters and buffers live on `device` (meta: no memory;
    copied even when already there, so that in-place updates in forward stay in the copy). The
    caller's model keeps its device, mode, values and hooks (its hooks are copied and run on the copy)."""
    memo: Dict[int, object] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        moved = t.detach().to(device, copy=True)
        memo[id(t)] = torch.nn.Parameter(moved, t.requires_grad) if isinstance(t, torch.nn.Parameter) else moved
    return copy.deepcopy(model, memo)


def call_model(model: torch.nn.Module, inputs):
    """`inputs` as a model call: a tuple or list holds the positional arguments, a dict the keyword
    arguments, anything else (a tensor) is the one argument. A single list or dict argument is
    therefore given as a 1-tuple: `([points0, points1],)`."""
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    if isinstance(inputs, dict):
        return model(**inputs)
    return model(inputs)


def check_model(model: torch.nn.Module, inputs, device: str = "npu", soc: Optional[str] = None,
                trace_device: str = "meta", availability: str = "auto") -> ModelCheck:
    """Which backend every deformable convolution of `model` gets on the target, and why.

    Runs a copy of `model` once (eval mode, no grad) on `trace_device` ("meta": nothing is computed
    or allocated; "cpu": real values, for models whose control flow reads them) and judges every
    operator call -- mx_dcn's layers, the functional API, and mmcv.ops layers while
    `mx_dcn.use_in_mmcv()` is active -- for `device`/`soc`. `inputs`: a tuple/list of positional
    arguments, a dict of keyword arguments, or the single tensor (see call_model); tensors may be
    nested in dicts/lists/tuples (mmdet3d's inputs) and are copied to `trace_device`. The caller's model
    and inputs are left as they were (device, values, train/eval mode, hooks); hooks registered on the
    model are copied with it and run on the copy (with meta tensors on "meta")."""
    if trace_device not in ("meta", "cpu"):
        raise ValueError(f"trace device: expected 'meta' or 'cpu', got {trace_device!r}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    traced = trace_copy(model, trace_device)
    traced.eval()  # not chained: some models' train() (mmdet's ResNet) returns None, not the module
    inputs = pytree.tree_map_only(torch.Tensor, lambda t: t.detach().to(trace_device, copy=True), inputs)
    with record_calls(traced, run_kernels=trace_device != "meta") as recorded, torch.no_grad():
        call_model(traced, inputs)
    names = collections.Counter(r.layer for r in recorded)
    seen: Dict[str, int] = collections.Counter()
    verdicts = []
    for r in recorded:
        layer = r.layer
        if names[layer] > 1:  # a module that calls the op more than once, or is called more than once
            seen[layer] += 1
            layer = f"{layer} #{seen[layer]}"
        verdicts.append(judge(as_target(r.problem, device, soc, availability), layer, r.module, r.site))
    return ModelCheck(verdicts, device, soc, trace_device, assumes_backends(device, availability))


def make_inputs(shapes: Sequence[Sequence[int]], dtype="float32") -> List[torch.Tensor]:
    dt = parse_dtype(dtype)
    return [torch.randn(tuple(s), dtype=dt) if dt != torch.bfloat16 else torch.randn(tuple(s)).to(dt)
            for s in shapes]
