"""What this machine's NPU environment offers the AscendC backend: the SoC torch_npu reports and the
installed custom-op package. Never raises; torch_npu is imported only here, on first use."""
from __future__ import annotations

import os
import threading
from typing import Dict, Optional

import torch

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


def custom_op_package() -> Optional[str]:
    """The installed mx_dcn custom-op package directory (with its aclnn library), or None."""
    roots = [r for r in os.environ.get("ASCEND_CUSTOM_OPP_PATH", "").split(":") if r]
    opp = os.environ.get("ASCEND_OPP_PATH")
    if opp:
        roots.append(os.path.join(opp, "vendors", "mx_dcn"))
    for root in roots:
        if os.path.exists(os.path.join(root, "op_api", "lib", "libcust_opapi.so")) and "mx_dcn" in root:
            return root
    return None


def is_atlas_a2(soc: str) -> bool:
    return soc.lower().startswith(SOC_PREFIX.lower())
