"""Cross-device regression: the shared case suite (mx_dcn.testing.cases) on one device/backend,
checked against the float64 oracle, recorded to disk, and verified later on another device.

- `run_suite`: every case forward and backward on a device, compared with the oracle computed on CPU.
- `record_suite`: the same, and writes inputs, outputs and gradients per case (torch.save) with a
  manifest.json describing the environment, device, backend, dtype, tolerances and checksums.
- `verify_dir`: reruns the recorded inputs on this device/backend and compares with what was recorded.
- `model_cases`: the deformable convolution calls of a user's model as cases (their shapes, parameters
  and dtypes), so `record_suite` can record a team's own model instead of the shared suite.

Every comparison is max|got - want| <= atol + rtol * max|want| with (rtol, atol) per dtype
(mx_dcn.testing.cases.TOLERANCES, copied into the manifest), reported with the index of the worst
element so a failure names case, tensor, error, allowance and place.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import platform
import socket
import sys
import warnings
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from . import registry
from .functional import explain, modulated_deform_conv2d
from .problem import Problem, parse_dtype
from .testing.cases import CASES, CASES_BY_NAME, TOLERANCES, Case

INPUT_NAMES = ("x", "offset", "mask", "weight", "bias")
OUTPUT_NAMES = ("out", "grad_x", "grad_offset", "grad_mask", "grad_weight", "grad_bias")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


# --------------------------------------------------------------------------- results


@dataclasses.dataclass
class TensorCheck:
    tensor: str
    ok: bool
    error: float
    allowed: float
    index: Tuple[int, ...] = ()
    note: str = ""

    def describe(self, case: str) -> str:
        if self.note:
            return f"{case}: {self.tensor} {self.note}"
        where = f" at index {self.index}" if self.index else ""
        return (f"{case}: {self.tensor} max error {self.error:.1e} > allowed {self.allowed:.1e}{where}")


@dataclasses.dataclass
class CaseResult:
    case: str
    dtype: str
    backend: str
    status: str                         # pass | fail | skip | error
    checks: List[TensorCheck] = dataclasses.field(default_factory=list)
    message: str = ""

    @property
    def failures(self) -> List[str]:
        if self.status == "error":
            return [f"{self.case}: {self.message}"]
        return [c.describe(self.case) for c in self.checks if not c.ok]

    def to_dict(self) -> dict:
        return {"case": self.case, "dtype": self.dtype, "backend": self.backend, "status": self.status,
                "message": self.message,
                "tensors": {c.tensor: {"ok": c.ok, "error": c.error, "allowed": c.allowed,
                                       "index": list(c.index), "note": c.note} for c in self.checks}}


def compare(name: str, got: Optional[torch.Tensor], want: Optional[torch.Tensor],
            tolerance: Tuple[float, float]) -> TensorCheck:
    """max|got - want| against atol + rtol * max|want|, with the index of the worst element."""
    rtol, atol = tolerance
    if (got is None) != (want is None):
        return TensorCheck(name, False, float("inf"), 0.0,
                           note="is missing" if got is None else "was produced but not expected")
    if got is None:
        return TensorCheck(name, True, 0.0, 0.0)
    got, want = got.detach().cpu().double(), want.detach().cpu().double()
    if got.shape != want.shape:
        return TensorCheck(name, False, float("inf"), 0.0,
                           note=f"has shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if got.numel() == 0:
        return TensorCheck(name, True, 0.0, atol)
    allowed = atol + rtol * float(want.abs().max())
    diff = (got - want).abs()
    diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)  # NaN is the worst
    flat = int(diff.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
    error = float(diff.reshape(-1)[flat])
    return TensorCheck(name, error <= allowed, error, allowed, index)


# --------------------------------------------------------------------------- running one case


def _grad_out(shape, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 7919)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def case_inputs(case: Case, dtype: torch.dtype, seed: int = 0) -> Dict[str, Optional[torch.Tensor]]:
    """The case's inputs on CPU in `dtype`, plus the upstream gradient `grad_out`."""
    inputs = case.make_inputs(dtype, "cpu", seed)
    ho, wo = case.out_hw
    inputs["grad_out"] = _grad_out((case.n, case.c_out, ho, wo), dtype, seed)
    return inputs


def compute(inputs: Dict[str, Optional[torch.Tensor]], args: dict, device: str,
            backend: Optional[str]) -> Tuple[str, Dict[str, Optional[torch.Tensor]]]:
    """Forward and backward of one call on `device` (forcing `backend` if given).
    Returns (the backend that ran, {out, grad_x, ...} on CPU)."""
    leaves = {k: (None if inputs[k] is None else inputs[k].to(device).requires_grad_(True))
              for k in INPUT_NAMES}
    with registry.use_backend(backend) if backend else contextlib.nullcontext(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fallbacks: the table names the backend
        chosen = explain(*(leaves[k] for k in INPUT_NAMES), **args).chosen or "?"
        out = modulated_deform_conv2d(*(leaves[k] for k in INPUT_NAMES), **args)
        out.backward(inputs["grad_out"].to(device))
    results = {"out": out.detach().cpu()}
    for k in INPUT_NAMES:
        t = leaves[k]
        results["grad_" + k] = None if t is None else (
            t.grad.detach().cpu() if t.grad is not None else torch.zeros_like(t).cpu())
    return chosen, results


def oracle_results(inputs: Dict[str, Optional[torch.Tensor]], args: dict) -> Dict[str, Optional[torch.Tensor]]:
    """The float64 oracle on the same (already rounded) input values, on CPU."""
    from .testing.oracle import oracle_backward, oracle_forward

    tensors = [inputs[k] for k in INPUT_NAMES]
    out = oracle_forward(*tensors, **args)
    grads = oracle_backward(*tensors, inputs["grad_out"], **args)
    results = {"out": torch.from_numpy(out)}
    for k in INPUT_NAMES:
        results["grad_" + k] = None if grads[k] is None else torch.from_numpy(grads[k])
    return results


def check_against(name: str, dtype: torch.dtype, backend: str, got: dict, want: dict,
                  tolerance: Tuple[float, float]) -> CaseResult:
    checks = [compare(k, got.get(k), want.get(k), tolerance) for k in OUTPUT_NAMES]
    status = "pass" if all(c.ok for c in checks) else "fail"
    return CaseResult(name, dtype_name(dtype), backend, status, checks)


def _guarded(name: str, dtype: torch.dtype, backend: Optional[str], fn: Callable[[], CaseResult]) -> CaseResult:
    """A forced backend that cannot take a case skips it; any other exception is an error result."""
    try:
        return fn()
    except registry.BackendUnusableError as e:
        return CaseResult(name, dtype_name(dtype), backend or "?", "skip", message=str(e).split("\n")[0])
    except Exception as e:  # a crash in one case must not hide the others
        return CaseResult(name, dtype_name(dtype), backend or "?", "error",
                          message=f"{type(e).__name__}: {e}".split("\n")[0])


# --------------------------------------------------------------------------- the suite


def select_cases(names: Optional[Iterable[str]] = None) -> List[Case]:
    """The suite, or the named cases in suite order; unknown names raise ValueError listing them."""
    if not names:
        return list(CASES)
    names = list(names)
    unknown = [n for n in names if n not in CASES_BY_NAME]
    if unknown:
        raise ValueError(f"--cases: unknown case(s) {unknown}; known: {', '.join(CASES_BY_NAME)}")
    return [c for c in CASES if c.name in names]


def suite_runs(cases: Sequence[Case], dtypes: Sequence[torch.dtype]) -> List[Tuple[Case, torch.dtype]]:
    """Every case in every dtype, dtype by dtype."""
    return [(case, dtype) for dtype in dtypes for case in cases]


@dataclasses.dataclass(frozen=True)
class ModelCall:
    """One distinct deformable convolution call of a model, as a case, with the layers that make it."""

    case: Case
    dtype: torch.dtype
    layers: Tuple[str, ...]


def model_cases(problems: Sequence[Tuple[str, Problem]]) -> List[ModelCall]:
    """(layer, Problem) pairs recorded from a model (mx_dcn.model_check) -> one ModelCall per distinct
    call (layers making the same call share one), named after its first layer. The inputs are generated
    from the run's seed at the model's own shapes, parameters and dtype; offsets ~ 1.5 * N(0, 1) and masks
    ~ U(0, 1), as in the shared suite."""
    calls: Dict[Tuple, List] = {}
    for layer, p in problems:
        key = (p.batch, p.in_channels, p.height, p.width, p.out_channels, p.kernel_h, p.kernel_w, p.stride,
               p.padding, p.dilation, p.groups, p.deformable_groups, p.has_mask, p.has_bias, p.dtype)
        if key in calls:
            calls[key][1].append(layer)
        else:
            calls[key] = [p, [layer]]
    out, used = [], set()
    for p, layers in calls.values():
        name = "".join(c if c.isalnum() or c in "._-" else "_" for c in layers[0]) or "call"
        while name in used:
            name += "_"
        used.add(name)
        case = Case(name, p.batch, p.in_channels, p.height, p.width, p.out_channels, kh=p.kernel_h, kw=p.kernel_w,
                    stride=p.stride, padding=p.padding, dilation=p.dilation, groups=p.groups,
                    deformable_groups=p.deformable_groups, mask=p.has_mask, bias=p.has_bias)
        out.append(ModelCall(case, p.dtype, tuple(layers)))
    return out


def run_suite(cases: Sequence[Case], dtypes: Sequence[torch.dtype], device: str = "cpu",
              backend: Optional[str] = None, seed: int = 0,
              progress: Optional[Callable[[str], None]] = None,
              keep: Optional[Callable[[Case, torch.dtype, dict, dict], None]] = None,
              check_oracle: bool = True,
              runs: Optional[Sequence[Tuple[Case, torch.dtype]]] = None) -> List[CaseResult]:
    """Every case x dtype (or the given (case, dtype) `runs`) on `device` against the oracle.
    `keep(case, dtype, inputs, results)` receives what was computed (used by record)."""
    results = []
    for case, dtype in (runs if runs is not None else suite_runs(cases, dtypes)):
        if progress:
            progress(f"{case.name} {dtype_name(dtype)}")

        def one(case=case, dtype=dtype):
            inputs = case_inputs(case, dtype, seed)
            chosen, got = compute(inputs, case.args(), device, backend)
            if keep:
                keep(case, dtype, inputs, got, chosen)
            if not check_oracle:
                return CaseResult(case.name, dtype_name(dtype), chosen, "pass", message="not checked")
            return check_against(case.name, dtype, chosen, got, oracle_results(inputs, case.args()),
                                 TOLERANCES[dtype])

        results.append(_guarded(case.name, dtype, backend, one))
    return results


# --------------------------------------------------------------------------- record / verify


def environment() -> dict:
    """Versions, host and date for the manifest (and `mx-dcn info`)."""
    from . import __version__
    import numpy

    env = {"mx_dcn": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
           "python": platform.python_version(), "platform": platform.platform(),
           "host": socket.gethostname(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if "torch_npu" in sys.modules:
        env["torch_npu"] = getattr(sys.modules["torch_npu"], "__version__", "?")
    if torch.version.cuda:
        env["cuda"] = torch.version.cuda
    return env


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _file_name(case: str, dtype: torch.dtype) -> str:
    return f"{case}.{dtype_name(dtype)}.pt"


def record_suite(out_dir: str, cases: Sequence[Case], dtypes: Sequence[torch.dtype], device: str = "cpu",
                 backend: Optional[str] = None, seed: int = 0,
                 progress: Optional[Callable[[str], None]] = None,
                 check_oracle: bool = True,
                 model_calls: Optional[Sequence[ModelCall]] = None,
                 source: str = "the shared case suite") -> Tuple[List[CaseResult], dict]:
    """Run the suite -- or a model's calls (`model_calls`, each in its own dtype unless `dtypes` is
    given) -- and write one file per (case, dtype) plus manifest.json into `out_dir`. `source` says what
    was recorded (the manifest keeps it, with each model call's layers)."""
    os.makedirs(out_dir, exist_ok=True)
    entries = []
    layers = {}
    runs = None
    if model_calls is not None:
        layers = {c.case.name: list(c.layers) for c in model_calls}
        runs = [(c.case, d) for c in model_calls for d in (dtypes or [c.dtype])]

    def keep(case: Case, dtype, inputs, got, chosen):
        name = _file_name(case.name, dtype)
        path = os.path.join(out_dir, name)
        args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in case.args().items()}
        torch.save({"format": FORMAT_VERSION, "case": case.name, "dtype": dtype_name(dtype), "args": args,
                    "inputs": dict(inputs), "outputs": got}, path)
        entry = {"case": case.name, "dtype": dtype_name(dtype), "file": name, "sha256": sha256(path),
                 "backend": chosen, "args": args,
                 "shapes": {k: list(v.shape) for k, v in {**inputs, **got}.items() if v is not None}}
        if case.name in layers:
            entry["layers"] = layers[case.name]
        entries.append(entry)

    results = run_suite(cases, dtypes, device, backend, seed, progress, keep, check_oracle, runs)
    status = {(r.case, r.dtype): r.status for r in results}
    for e in entries:
        e["oracle_check"] = status.get((e["case"], e["dtype"]), "?") if check_oracle else "not run"
    manifest = {
        "format": FORMAT_VERSION,
        "environment": environment(),
        "device": device,
        "backend_requested": backend or "auto (registry)",
        "source": source,
        "dtypes": sorted({e["dtype"] for e in entries}) if runs is not None else [dtype_name(d) for d in dtypes],
        "seed": seed,
        "tolerances": {dtype_name(d): {"rtol": r, "atol": a} for d, (r, a) in TOLERANCES.items()},
        "comparison": "max|got - want| <= atol + rtol * max|want| per tensor",
        "cases": entries,
    }
    with open(os.path.join(out_dir, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    return results, manifest


def load_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise ValueError(f"{directory}: no {MANIFEST} here (expected a directory written by "
                         f"'mx-dcn regress record --out DIR')")
    with open(path) as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: format {manifest.get('format')!r} is not supported (expected {FORMAT_VERSION})")
    return manifest


def verify_dir(directory: str, device: str = "cpu", backend: Optional[str] = None,
               cases: Optional[Iterable[str]] = None,
               progress: Optional[Callable[[str], None]] = None) -> Tuple[List[CaseResult], dict]:
    """Rerun every recorded case on `device`/`backend`; compare with the recorded outputs and gradients
    under the manifest's tolerance for the recorded dtype. A file whose checksum changed is reported
    (and fails) besides its value comparison."""
    manifest = load_manifest(directory)
    wanted = set(cases) if cases else None
    entries = [e for e in manifest["cases"] if wanted is None or e["case"] in wanted]
    if wanted:
        missing = wanted - {e["case"] for e in entries}
        if missing:
            raise ValueError(f"--cases: not recorded in {directory}: {sorted(missing)}")
    tolerances = {k: (v["rtol"], v["atol"]) for k, v in manifest["tolerances"].items()}
    results = []
    for e in entries:
        dtype = parse_dtype(e["dtype"])
        if progress:
            progress(f"{e['case']} {e['dtype']}")

        def one(e=e, dtype=dtype):
            path = os.path.join(directory, e["file"])
            if not os.path.isfile(path):
                return CaseResult(e["case"], e["dtype"], backend or "?", "error",
                                  message=f"recorded file {e['file']} is missing")
            changed = sha256(path) != e["sha256"]
            data = torch.load(path, map_location="cpu", weights_only=True)
            args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data["args"].items()}
            chosen, got = compute(data["inputs"], args, device, backend)
            result = check_against(e["case"], dtype, chosen, got, data["outputs"], tolerances[e["dtype"]])
            if changed:
                result.checks.append(TensorCheck(e["file"], False, float("nan"), 0.0,
                                                 note="checksum differs from the manifest (the file "
                                                      "changed after recording)"))
                result.status = "fail"
            return result

        results.append(_guarded(e["case"], dtype, backend, one))
    return results, manifest


# --------------------------------------------------------------------------- presentation


class Progress:
    """A textual progress bar on stderr: redrawn in place on a terminal, one line per step otherwise
    (so CI logs stay readable)."""

    def __init__(self, total: int, stream=None, width: int = 30, enabled: bool = True):
        self.total, self.done, self.width, self.enabled = total, 0, width, enabled and total > 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, label: str) -> None:
        if not self.enabled:
            return
        self.done += 1
        filled = self.width * (self.done - 1) // self.total
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {self.done}/{self.total} {label}"
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width + 60)[:self.width + 60])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            if self.tty:
                self.stream.write("\r" + f"[{'#' * self.width}] {self.total}/{self.total} done".ljust(self.width + 60) + "\n")
            self.stream.flush()


def format_results(results: Sequence[CaseResult]) -> str:
    """The summary table: max error per tensor ('!' marks a failure), then each failure in words."""
    short = {"out": "out", "grad_x": "grad_x", "grad_offset": "grad_off", "grad_mask": "grad_mask",
             "grad_weight": "grad_w", "grad_bias": "grad_b"}
    width = max([len("case")] + [len(r.case) for r in results])
    head = f"{'case':<{width}}  {'dtype':<8} {'backend':<9} " + " ".join(f"{short[k]:>10}" for k in OUTPUT_NAMES) + "  status"
    lines = [head, "-" * len(head)]
    for r in results:
        by_name = {c.tensor: c for c in r.checks}
        cells = []
        for k in OUTPUT_NAMES:
            c = by_name.get(k)
            if c is None or r.status in ("skip", "error"):
                cells.append(f"{'':>10}")
            elif c.note or (c.error == 0.0 and c.allowed == 0.0 and c.ok):
                cells.append(f"{'-' if c.ok else 'MISMATCH!':>10}")
            else:
                cells.append(f"{c.error:>9.1e}{'!' if not c.ok else ' '}")
        lines.append(f"{r.case:<{width}}  {r.dtype:<8} {r.backend:<9} " + " ".join(cells) + f"  {r.status.upper()}")
    counts: Dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines.append("-" * len(head))
    lines.append(f"{len(results)} cases: " + ", ".join(f"{counts[s]} {s}" for s in ("pass", "fail", "error", "skip")
                                                        if s in counts))
    problems = [f for r in results for f in r.failures]
    skipped = [f"{r.case}: skipped: {r.message}" for r in results if r.status == "skip"]
    if problems:
        lines.append("")
        lines.append("Mismatches:")
        lines.extend("  " + p for p in problems)
    if skipped:
        lines.append("")
        lines.extend("  " + s for s in skipped)
    return "\n".join(lines)


def exit_status(results: Sequence[CaseResult]) -> int:
    """0 when every case that ran passed (and at least one ran), else 1."""
    ran = [r for r in results if r.status != "skip"]
    return 0 if ran and all(r.status == "pass" for r in ran) else 1
