"""Where the CPU model of the AscendC API lives as a shared library, and building it on demand.

The library (kernels_ascend/sim + the kernel sources, see kernels_ascend/README.md) is built by
ci/ascend_sim.sh --lib-only into $MX_DCN_SIM_BUILD or kernels_ascend/build_sim. `ensure_sim_library`
rebuilds it when it is missing or older than any kernel, model or tiling source (two g++ runs, about
20 s); it needs a source checkout (the kernels_ascend sources are not part of an installed wheel).
"""
from __future__ import annotations

import os
import subprocess
import threading

from ... import settings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_SCRIPT = os.path.join(ROOT, "ci", "ascend_sim.sh")
_SOURCES = [os.path.join(ROOT, "kernels_ascend", d) for d in ("op_kernel", "op_host", "sim")]
_lock = threading.Lock()


class SimLibraryError(RuntimeError):
    """The model library is absent and cannot be built here (the message says why)."""


def default_sim_library() -> str:
    """Where ci/ascend_sim.sh puts the model library ($MX_DCN_SIM_BUILD or kernels_ascend/build_sim)."""
    build = settings.get("MX_DCN_SIM_BUILD") or os.path.join(ROOT, "kernels_ascend", "build_sim")
    return os.path.join(build, "libmxdcn_ascend_sim.so")


def _stale(library: str) -> bool:
    if not os.path.exists(library):
        return True
    built = os.path.getmtime(library)
    for folder in _SOURCES:
        for base, _, files in os.walk(folder):
            if any(os.path.getmtime(os.path.join(base, f)) > built for f in files):
                return True
    return False


def ensure_sim_library(build: bool = True, log=None) -> str:
    """The path of an up-to-date model library, building it if needed and `build` is true.
    `log(message)` hears about a build before it starts. Raises SimLibraryError saying why when the
    library is missing and cannot be built."""
    library = default_sim_library()
    with _lock:
        if not _stale(library):
            return library
        have_sources = os.path.exists(BUILD_SCRIPT) and all(os.path.isdir(d) for d in _SOURCES)
        if not have_sources:
            if os.path.exists(library):
                return library   # an installed library without sources to compare against
            raise SimLibraryError(f"the AscendC model library {library} is not built and this installation has no "
                                  "kernels_ascend sources to build it from (use a source checkout)")
        if not build:
            raise SimLibraryError(f"the AscendC model library {library} is missing or older than its sources; "
                                  f"build it with {BUILD_SCRIPT} --lib-only")
        if log:
            log(f"building the AscendC model library ({os.path.relpath(BUILD_SCRIPT, ROOT)} --lib-only, about 20 s)")
        try:
            result = subprocess.run(["bash", BUILD_SCRIPT, "--lib-only"], capture_output=True, text=True)
        except OSError as e:
            raise SimLibraryError(f"building the AscendC model library failed: {e}") from None
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise SimLibraryError(f"building the AscendC model library failed ({os.path.relpath(BUILD_SCRIPT, ROOT)} "
                                  f"--lib-only exited with status {result.returncode})" + (f":\n{output}" if output else ""))
    return library
