"""Backend selection: which kernel a call gets, and why.

For each device type there is an ordered chain of backends, fastest first, ending with the portable
backend. A call gets the first backend of its device's chain that is available on this machine and
whose constraints the call meets. Leaving the chain's first backend is a *fallback*: it is warned
about once per distinct reason (naming the violations), or raised in strict mode.

Controls:
- force a backend: environment variable MX_DCN_BACKEND=<name>, or `with mx_dcn.use_backend(name):`
  (a forced backend that cannot take the call raises instead of falling back);
- strict mode: MX_DCN_STRICT=1, or `with mx_dcn.strict():` -- a fallback raises BackendFallbackError;
- `mx_dcn.explain(...)` returns the `SelectionReport` without running anything.

Determinism: under `torch.use_deterministic_algorithms(True)` (not warn_only) or
MX_DCN_DETERMINISTIC=1, a backend whose backward is not deterministic (`Backend.deterministic` False)
breaks the rule "deterministic", so the call goes to the next backend of the chain that is.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib
import threading
import warnings
from typing import Dict, List, Optional, Tuple

import torch

from . import settings
from .backends.base import DETERMINISTIC_ENV, Backend, Violation
from .problem import Problem

# Backends by name -> "module:Class", imported lazily so `import mx_dcn` never loads an extension,
# torch_npu or CUDA.
_BACKEND_CLASSES: Dict[str, str] = {
    "cpu": "mx_dcn.backends.cpu:CpuBackend",
    "cuda": "mx_dcn.backends.cuda:CudaBackend",
    "ascendc": "mx_dcn.backends.ascendc:AscendCBackend",
    "cann": "mx_dcn.backends.cann:CannBackend",
    "portable": "mx_dcn.backends.portable:PortableBackend",
}

# Preference order per device type; the portable backend ends every chain.
CHAINS: Dict[str, Tuple[str, ...]] = {
    "cpu": ("cpu", "portable"),
    "cuda": ("cuda", "portable"),
    "npu": ("ascendc", "cann", "portable"),
}
_DEFAULT_CHAIN: Tuple[str, ...] = ("portable",)

_instances: Dict[str, Backend] = {}
_instances_lock = threading.Lock()
_local = threading.local()


class BackendFallbackError(RuntimeError):
    """Strict mode: the call would leave the preferred backend of its device."""


class BackendUnusableError(RuntimeError):
    """A forced backend cannot take the call."""


def backend_names() -> Tuple[str, ...]:
    return tuple(_BACKEND_CLASSES)


def get_backend(name: str) -> Backend:
    """The backend instance called `name` (created on first use)."""
    backend = _instances.get(name)  # lock-free once created (also keeps torch.compile tracing simple)
    if backend is not None:
        return backend
    if name not in _BACKEND_CLASSES:
        raise ValueError(f"backend: expected one of {list(_BACKEND_CLASSES)}, got {name!r}")
    with _instances_lock:
        backend = _instances.get(name)
        if backend is None:
            module_name, cls_name = _BACKEND_CLASSES[name].split(":")
            backend = getattr(importlib.import_module(module_name), cls_name)()
            _instances[name] = backend
        return backend


def chain_for(device_type: str) -> Tuple[str, ...]:
    return CHAINS.get(device_type, _DEFAULT_CHAIN)


# --------------------------------------------------------------------------- controls


def forced_backend() -> Optional[str]:
    """The backend `use_backend` or else MX_DCN_BACKEND forces (a bad value raises, naming the valid ones)."""
    return getattr(_local, "forced", None) or settings.get("MX_DCN_BACKEND")


def strict_enabled() -> bool:
    local = getattr(_local, "strict", None)
    if local is not None:
        return local
    return settings.get("MX_DCN_STRICT")


@contextlib.contextmanager
def use_backend(name: Optional[str]):
    """Force backend `name` inside the block (this thread); None lifts an outer forcing."""
    if name is not None and name not in _BACKEND_CLASSES:
        raise ValueError(f"use_backend: expected one of {list(_BACKEND_CLASSES)}, got {name!r}")
    previous = getattr(_local, "forced", None)
    _local.forced = name
    try:
        yield
    finally:
        _local.forced = previous


@contextlib.contextmanager
def strict(enabled: bool = True):
    """Inside the block (this thread), a fallback raises BackendFallbackError instead of warning."""
    previous = getattr(_local, "strict", None)
    _local.strict = enabled
    try:
        yield
    finally:
        _local.strict = previous


# --------------------------------------------------------------------------- determinism

def deterministic_required() -> bool:
    """Whether calls must get a backend whose backward is deterministic: torch's flag without
    warn_only (with warn_only, torch runs non-deterministic ops and warns; so do mx_dcn's), or
    MX_DCN_DETERMINISTIC=1."""
    if torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled():
        return True
    return bool(settings.get(DETERMINISTIC_ENV))


def judge(backend: Backend, problem: Problem) -> Tuple[Violation, ...]:
    """The constraints `problem` breaks on `backend`: its own rules, plus "deterministic" when
    determinism is required and the backend cannot guarantee it."""
    found = tuple(backend.violations(problem))
    if not backend.deterministic and deterministic_required():
        found += (Violation("deterministic", f"deterministic algorithms are requested (torch."
                            f"use_deterministic_algorithms(True) or {DETERMINISTIC_ENV}=1) and this backend's "
                            f"backward is not deterministic: {backend.determinism}"),)
    return found


# --------------------------------------------------------------------------- the report


@dataclasses.dataclass(frozen=True)
class BackendVerdict:
    """What one backend says about one call."""

    name: str
    available: bool
    reason: str                     # why unavailable ("" when available)
    violations: Tuple[Violation, ...]
    in_chain: bool                  # serves the call's device type
    assumed: bool = False           # unavailable here, but assumed present on a declared target
    missing: Tuple[str, ...] = ()   # the rule names of the missing pieces, when the backend names them

    @property
    def usable(self) -> bool:
        return (self.available or self.assumed) and not self.violations and self.in_chain


@dataclasses.dataclass(frozen=True)
class SelectionReport:
    """Which backend a call gets and why; printable. `chosen` is None only when nothing can run it."""

    problem: Problem
    chain: Tuple[str, ...]
    chosen: Optional[str]
    forced: Optional[str]
    backends: Dict[str, BackendVerdict]

    @property
    def preferred(self) -> str:
        return self.chain[0]

    @property
    def is_fallback(self) -> bool:
        return self.chosen != self.preferred

    @property
    def violations(self) -> Dict[str, Tuple[Violation, ...]]:
        return {name: v.violations for name, v in self.backends.items()}

    def fallback_reasons(self) -> List[str]:
        """Why each backend ahead of the chosen one in the chain was passed over."""
        reasons = []
        for name in self.chain:
            if name == self.chosen:
                break
            verdict = self.backends[name]
            if not verdict.available and not verdict.assumed:
                reasons.append(f"{name} unavailable: {verdict.reason}")
            for v in verdict.violations:
                reasons.append(f"{name} [{v.rule}] {v.message}")
        return reasons

    def __str__(self) -> str:
        lines = [f"mx_dcn backend selection for {self.problem.summary()}",
                 f"  chain for device '{self.problem.device_type}': {' -> '.join(self.chain)}"]
        if self.problem.declared_target:
            lines.append("  declared target: constraints judged for it; backends missing on this machine "
                         "are assumed installed there")
        if self.forced:
            lines.append(f"  forced: {self.forced}")
        for name, v in self.backends.items():
            # The mark says what the call gets from the backend; whether the backend is on this machine
            # is said apart from it ("rejected" is about the call, "unavailable" about the machine).
            if name == self.chosen:
                mark = "chosen"
            elif not v.in_chain:
                mark = "other device"
            elif v.violations:
                mark = "rejected"
            elif not v.available and not v.assumed:
                mark = "unavailable"
            else:
                mark = "not needed"
            availability = ""
            if mark == "unavailable":
                availability = v.reason
            elif v.assumed and v.missing:  # the reasons matter on this machine only: `mx-dcn info` has them
                availability = (f"not on this machine (missing {', '.join(v.missing)}), assumed installed "
                                "on the target")
            elif not v.available:
                state = "not on this machine, assumed installed on the target" if v.assumed else "unavailable here"
                availability = f"{state} ({v.reason})"
            lines.append(f"  [{mark:>12}] {name}" + (f": {availability}" if availability and not v.violations else ""))
            for viol in v.violations:
                lines.append(f"                 - {viol.rule}: {viol.message}")
            if availability and v.violations:
                lines.append(f"                 and {availability}")
        lines.append(f"  => {self.chosen if self.chosen else 'no backend can run this call'}"
                     + (" (fallback)" if self.chosen and self.is_fallback else ""))
        return "\n".join(lines)


def select(problem: Problem) -> SelectionReport:
    """Evaluate every backend for `problem` and pick one (no kernel runs)."""
    chain = chain_for(problem.device_type)
    verdicts = {}
    for name in _BACKEND_CLASSES:
        backend = get_backend(name)
        availability = backend.available()
        in_chain = name in chain
        violations = judge(backend, problem) if in_chain else ()
        verdicts[name] = BackendVerdict(name, bool(availability), "" if availability else availability.reason,
                                        violations, in_chain,
                                        assumed=in_chain and problem.declared_target and not availability,
                                        missing=tuple(v.rule for v in availability.missing))
    forced = forced_backend()
    if forced is not None:
        chosen = forced if verdicts[forced].usable else None  # must serve the device, too
    else:
        chosen = next((n for n in chain if verdicts[n].usable), None)
    return SelectionReport(problem, chain, chosen, forced, verdicts)


# --------------------------------------------------------------------------- dispatch-time policy

_warned: set = set()
_warned_lock = threading.Lock()


def resolve(problem: Problem) -> Backend:
    """The backend that runs `problem`, applying forcing, strict mode and the one-time warning."""
    # The common case first: the forced backend, or else the head of the device's chain, can take the
    # call. Judging that one backend is all `select` would conclude (no fallback, nothing to warn
    # about or refuse in strict mode), without building the report of every backend (~25 us a call).
    chain = chain_for(problem.device_type)
    forced = forced_backend()
    first = forced if forced is not None else chain[0]
    backend = get_backend(first)
    if first in chain and not problem.declared_target and backend.available() and not judge(backend, problem):
        return backend
    report = select(problem)
    if report.forced is not None and report.chosen is None:
        v = report.backends[report.forced]
        if not v.in_chain:
            why = f"it does not serve device '{problem.device_type}' (chain: {' -> '.join(report.chain)})"
        elif not v.available and not v.assumed:
            why = v.reason
        else:
            why = "; ".join(str(x) for x in v.violations)
        raise BackendUnusableError(f"backend '{report.forced}' was forced but cannot run "
                                   f"{problem.summary()}: {why}")
    if report.chosen is None:
        raise BackendUnusableError(f"no backend can run {problem.summary()}:\n{report}")
    if report.forced is None and report.is_fallback:
        reasons = report.fallback_reasons()
        if strict_enabled():
            raise BackendFallbackError(f"strict mode: {problem.summary()} would fall back from "
                                       f"'{report.preferred}' to '{report.chosen}': " + "; ".join(reasons))
        key = (problem.device_type, report.chosen, tuple(reasons))
        with _warned_lock:
            first = key not in _warned
            _warned.add(key)
        if first:
            warnings.warn(f"mx_dcn: falling back from '{report.preferred}' to '{report.chosen}' for "
                          f"{problem.summary()}: " + "; ".join(reasons) + " (warned once per reason; "
                          "MX_DCN_STRICT=1 makes this an error)", RuntimeWarning, stacklevel=4)
    return get_backend(report.chosen)


def reset_warnings() -> None:
    """Forget which fallbacks were warned about (for tests)."""
    with _warned_lock:
        _warned.clear()
