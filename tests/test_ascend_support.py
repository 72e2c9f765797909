"""Helpers for the tests of the Ascend path (no tests here): the CPU-model library, built on demand.

`pytest` alone works on a fresh clone: when the model library is missing or older than any of the
kernel, model or tiling sources, mx_dcn.backends.ascendc.sim_library builds it (ci/ascend_sim.sh
--lib-only, two g++ invocations).
"""
import pytest

from mx_dcn.backends.ascendc.kernels import SimKernels
from mx_dcn.backends.ascendc.sim_library import ensure_sim_library


def sim_library() -> str:
    """The path of an up-to-date model library (building it if needed)."""
    return ensure_sim_library()


@pytest.fixture(scope="session")
def sim():
    """SimKernels with 48 vector cores (tests make their own for other core counts / UB sizes)."""
    return SimKernels(sim_library(), core_num=48)
