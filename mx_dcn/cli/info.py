"""`mx-dcn info`: versions, devices, and which backends can run here (with the reason when not)."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from typing import Optional

from .args import DEVICES, PROG, Formatter, emit_json, table, wrap


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
                             "reason": "" if a else a.reason, "description": b.description})
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
    if args.json:
        emit_json({"versions": versions, "peers": peers, "devices": devices, "backends": backends,
                    "chains": chains, "settings": settings, "environment": environment,
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
    out += ["Backends:"]
    rows = [(b["name"], ",".join(b["devices"]), "yes" if b["available"] else "no", b["reason"] or b["description"])
            for b in backends]
    out += ["  " + line for line in table(("backend", "devices", "available", "reason / description"), rows)]
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
                                        "sees, every backend's availability with the reason when unavailable, and "
                                        "the MX_DCN_* variables set, flagging values mx_dcn rejects and names it "
                                        "does not read. Exit status 1 when a value would be rejected."),
                       epilog="examples:\n  mx-dcn info\n  mx-dcn info --json | python -c "
                              "\"import json,sys; print(json.load(sys.stdin)['backends'])\"")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)
