"""`mx-dcn info`: versions, devices, and which backends can run here (with the reason when not)."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from typing import Optional

from .args import DEVICES, PROG, Formatter, emit_json, table, wrap


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cann_version() -> Optional[str]:
    """The CANN toolkit's version and where it is (mx_dcn/backends/ascendc/toolkit.py finds it)."""
    from ..backends.ascendc import toolkit

    cann, _ = toolkit.find_cann()
    return f"{cann.version} ({cann.root})" if cann else None


# --------------------------------------------------------------------------- NPU (Ascend) section


def _npu_section() -> dict:
    """CANN, torch_npu and the op package as found on disk, and what the ascendc backend misses, by
    rule name (mx_dcn/backends/ascendc/device.py lists the rules)."""
    from .. import registry
    from ..backends.ascendc import toolkit

    section = dict(toolkit.describe())
    availability = registry.get_backend("ascendc").available()
    section["ascendc missing"] = [{"rule": v.rule, "message": v.message} for v in availability.missing]
    return section


def _npu_lines(section: dict) -> list:
    out = ["NPU (Ascend):"]
    out += [f"  {k:<14} {v}" for k, v in section.items() if k != "ascendc missing"]
    missing = section["ascendc missing"]
    if not missing:
        return out + ["  ascendc        has every piece it needs"]
    out.append("  ascendc        misses " + ", ".join(m["rule"] for m in missing) + ":")
    return out + [f"    {m['rule']:<16} {m['message']}" for m in missing]


def _cpu_kernel_dispatch() -> str:
    """What the C++ CPU kernel runs on this machine ("avx512 sampling, own GEMM"), or why it cannot say."""
    from .. import ops

    try:
        if ops.load_error() is not None:
            return "not built"
        mod = ops.load()
        return f"{mod.kernel_isa()} sampling, {mod.kernel_gemm()} GEMM"
    except Exception as e:  # e.g. a bad MX_DCN_CPU_ISA: info reports it instead of failing
        return f"error: {e}"


def _mib(read) -> str:
    try:
        return str(read() // (1024 * 1024))
    except ValueError as e:  # a bad MX_DCN_WORKSPACE_*: flagged under Environment
        return f"error: {e}"


def cmd_info(args) -> int:
    import torch

    from .. import __version__, registry

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
                             "reason": "" if a else a.reason, "description": b.description,
                             "missing": [v.rule for v in a.missing],
                             "deterministic": b.deterministic, "determinism": b.determinism,
                             "limits": list(b.limits)})
        except Exception as e:  # a backend module that fails to import is reported, not fatal
            backends.append({"name": name, "devices": [], "available": False,
                             "reason": f"failed to load: {type(e).__name__}: {e}", "description": ""})
    from .. import settings as env_settings
    from ..workspace import cache_limit_from_env, get_workspace_budget

    settings = {"workspace budget (MiB)": _mib(get_workspace_budget),
                "workspace cache (MiB)": _mib(cache_limit_from_env),
                "CPU kernel": _cpu_kernel_dispatch()}
    environment = env_settings.report()
    bad_values = [e for e in environment if e["problem"] and e["read_by"]]
    chains = {d: list(registry.chain_for(d)) for d in DEVICES}
    npu = _npu_section()
    if args.json:
        emit_json({"versions": versions, "peers": peers, "devices": devices, "backends": backends,
                    "chains": chains, "settings": settings, "npu": npu, "environment": environment,
                    "notes": [npu_note] if npu_note else []})
        return 1 if bad_values else 0
    out = ["Versions:"]
    out += [f"  {k:<14} {v if v else 'not installed'}" for k, v in versions.items()]
    out += ["Peers (for comparisons):"]
    out += [f"  {k:<14} {v if v else 'not installed'}" for k, v in peers.items()]
    out += ["Devices seen:"]
    out += [f"  {d['type']:<6} x{d['count']}  {d['detail']}" for d in devices]
    if npu_note:
        out.append(f"  ({npu_note})")
    out += _npu_lines(npu)
    out += ["Backends:"]
    def why(b):   # pieces missing by rule are listed by name here, with their reasons in the NPU section
        return "missing " + ", ".join(b["missing"]) if b.get("missing") else b["reason"] or b["description"]

    rows = [(b["name"], ",".join(b["devices"]), "yes" if b["available"] else "no", why(b)) for b in backends]
    out += ["  " + line for line in table(("backend", "devices", "available", "reason / description"), rows)]
    out += ["Determinism of each backward (under torch.use_deterministic_algorithms(True), calls skip a 'no'):"]
    out += [f"  {b['name']:<9} {'yes' if b.get('deterministic') else 'no ':<4} {b.get('determinism', '')}"
            for b in backends]
    out += ["Limits of the NPU backends (rule: constraint; a call that breaks one goes to the next backend):"]
    for b in backends:
        if "npu" in b["devices"]:
            out += [f"  {b['name']}:"] + [f"    {limit}" for limit in b.get("limits") or ["(none: any valid call)"]]
    out += ["Preference per device: " + "; ".join(f"{d}: {' -> '.join(c)}" for d, c in chains.items())]
    out += ["Settings: " + ", ".join(f"{k}={v!s}" for k, v in settings.items())]
    out += ["Environment (MX_DCN_* variables set):"]
    out += [f"  {e['name']}={e['value']}" + (f"  <- {e['problem']}" if e["problem"] else "") for e in environment]
    if not environment:
        out.append("  none")
    print("\n".join(out))
    if bad_values:
        print(f"{PROG} info: {len(bad_values)} MX_DCN_* variable(s) with a value mx_dcn rejects (above); "
              "mx_dcn/settings.py lists every variable and its valid values", file=sys.stderr)
    return 1 if bad_values else 0


def register(sub) -> None:
    p = sub.add_parser("info", formatter_class=Formatter, help="versions, devices and backend availability",
                       description=wrap("Show versions (mx_dcn, torch, torch_npu, CANN), devices this process "
                                   "sees, every backend's availability with the reason when unavailable, "
                                   "each backend's determinism and the NPU backends' limits, the NPU pieces "
                                   "the ascendc backend needs (CANN toolkit, torch_npu, the mx_dcn op package, "
                                   "the torch_npu glue), each missing one by rule name, and the MX_DCN_* "
                                   "variables set, flagging values mx_dcn rejects and names it does not read. "
                                   "Exit status 1 when a value would be rejected."),
                       epilog="examples:\n  mx-dcn info\n  mx-dcn info --json | python -c "
                              "\"import json,sys; print(json.load(sys.stdin)['backends'])\"")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)
