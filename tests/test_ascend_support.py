"""Helpers for the tests of the Ascend path (no tests here): the CPU-model library, built on demand.

`pytest` alone works on a fresh clone: when the model library is missing or older than any of the
kernel, model or tiling sources, ci/ascend_sim.sh --lib-only builds it (two g++ invocations).
"""
import os
import subprocess
import threading

import pytest

from mx_dcn.backends.ascendc.kernels import SimKernels, default_sim_library

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SOURCES = [os.path.join(ROOT, "kernels_ascend", d) for d in ("op_kernel", "op_host", "sim")]
_lock = threading.Lock()


def _stale(library: str) -> bool:
    if not os.path.exists(library):
        return True
    built = os.path.getmtime(library)
    for folder in _SOURCES:
        for base, _, files in os.walk(folder):
            if any(os.path.getmtime(os.path.join(base, f)) > built for f in files):
                return True
    return False


def sim_library() -> str:
    """The path of an up-to-date model library (building it if needed)."""
    library = default_sim_library()
    with _lock:
        if _stale(library):
            result = subprocess.run(["bash", os.path.join(ROOT, "ci", "ascend_sim.sh"), "--lib-only"],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"building the AscendC model failed:\n{result.stdout}\n{result.stderr}")
    return library


@pytest.fixture(scope="session")
def sim():
    """SimKernels with 48 vector cores (tests make their own for other core counts / UB sizes)."""
    return SimKernels(sim_library(), core_num=48)
