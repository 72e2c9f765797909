"""What this machine's NPU environment offers the AscendC backend, piece by piece, each missing piece
a named rule (shown by `mx_dcn.explain` and `mx-dcn info`):

- "torch_npu": torch_npu is importable;
- "cann_toolkit" / "cann_version": a CANN toolkit is found, of version 8.x or later (toolkit.py says
  where it looks);
- "npu_device" / "soc": torch_npu sees an NPU, and it is an Atlas A2 (Ascend910B*);
- "op_package": the mx_dcn custom-op package is installed (built by `pip install` into mx_dcn/_opp, or
  by kernels_ascend/build.sh and its .run);
- "op_package_cann": it was built with this toolkit's compiler (version.info of both);
- "op_package_load": its aclnn library loads;
- "npu_glue": the torch_npu glue mx_dcn._npu is built and imports.

Never raises; torch_npu is imported only here, on first use.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from typing import Dict, List, Optional

import torch

from ..base import Violation
from . import toolkit
from .tiling import SOC_PREFIX

_soc_lock = threading.Lock()
_soc_cache: Dict[str, Optional[str]] = {}


def device_soc() -> Optional[str]:
    """The SoC name torch_npu reports for the current NPU, or None (never raises)."""
    with _soc_lock:
        if "soc" not in _soc_cache:
            soc = None
            try:
                import torch_npu  # noqa: F401
                if torch.npu.is_available() and torch.npu.device_count() > 0:
                    soc = str(torch.npu.get_device_name(torch.npu.current_device()))
            except Exception:  # no torch_npu, no driver: unknown
                soc = None
            _soc_cache["soc"] = soc
        return _soc_cache["soc"]


def is_atlas_a2(soc: str) -> bool:
    return soc.lower().startswith(SOC_PREFIX.lower())


def _torch_npu_pieces() -> List[Violation]:
    try:
        import torch_npu  # noqa: F401
    except Exception as e:  # ImportError, or a broken CANN environment
        return [Violation("torch_npu", f"torch_npu is not importable ({type(e).__name__}: {e})")]
    soc = device_soc()
    if soc is None:
        return [Violation("npu_device", "no NPU device is visible to torch_npu")]
    if not is_atlas_a2(soc):
        return [Violation("soc", f"the NPU is {soc}, not an Atlas A2 SoC ({SOC_PREFIX}*)")]
    return []


def _cann_pieces(cann: Optional[toolkit.CannToolkit], where: str) -> List[Violation]:
    if cann is None:
        return [Violation("cann_toolkit", where)]
    if cann.major is None or cann.major < toolkit.MIN_CANN_MAJOR:
        return [Violation("cann_version", f"CANN {cann.version} at {cann.root}: the kernels need CANN "
                                          f"{toolkit.MIN_CANN_MAJOR}.0 or later")]
    return []


def _op_package_pieces(cann: Optional[toolkit.CannToolkit]) -> List[Violation]:
    package = toolkit.find_op_package()
    if package is None:
        return [Violation("op_package", "the mx_dcn custom-op package is not installed (no "
                          f"op_api/lib/{toolkit.OP_API_LIBRARY} in " + ", ".join(toolkit.op_package_candidates())
                          + "); `pip install --no-build-isolation .` builds it where CANN is installed")]
    out = []
    built, running = toolkit.op_package_compiler_version(package), cann.compiler_version() if cann else None
    if cann is not None and (built is None or running is None or built != running):   # no toolkit: said already
        out.append(Violation("op_package_cann", f"the op package at {package} was built with CANN compiler "
                             f"{built or 'unknown'}, the toolkit here has {running or 'unknown'}; rebuild it "
                             "with this toolkit (`pip install --no-build-isolation .`)"))
    try:
        ctypes.CDLL(os.path.join(package, "op_api", "lib", toolkit.OP_API_LIBRARY))
    except OSError as e:
        out.append(Violation("op_package_load", f"its aclnn library does not load ({e})"))
    return out


def _glue_pieces(torch_npu_ok: bool) -> List[Violation]:
    if importlib.util.find_spec("mx_dcn._npu") is None:
        return [Violation("npu_glue", "the torch_npu glue mx_dcn._npu is not built (`pip install "
                                      "--no-build-isolation .` builds it where torch_npu and CANN are installed)")]
    if not torch_npu_ok:
        return []   # built; it cannot load without torch_npu, which is reported already
    try:
        import mx_dcn._npu  # noqa: F401
    except Exception as e:
        return [Violation("npu_glue", f"the torch_npu glue mx_dcn._npu does not import ({type(e).__name__}: {e})")]
    return []


def environment_pieces() -> List[Violation]:
    """Every missing piece of the NPU environment (empty when the AscendC kernels can run here)."""
    cann, where = toolkit.find_cann()
    torch_npu_missing = _torch_npu_pieces()
    return (torch_npu_missing + _cann_pieces(cann, where) + _op_package_pieces(cann)
            + _glue_pieces(not any(v.rule == "torch_npu" for v in torch_npu_missing)))


def use_op_package(package: str) -> None:
    """Make CANN find the op package's kernels: add its vendor directory to ASCEND_CUSTOM_OPP_PATH
    (what its .run's set_env.bash does), before the first launch."""
    paths = [p for p in os.environ.get("ASCEND_CUSTOM_OPP_PATH", "").split(":") if p]
    if package not in paths:
        os.environ["ASCEND_CUSTOM_OPP_PATH"] = ":".join([package] + paths)
