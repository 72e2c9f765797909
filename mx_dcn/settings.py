"""Every environment variable mx_dcn reads (MX_DCN_*): who reads it, what it accepts, what it does.

One table, so that a value is judged the same way everywhere:
- the package reads its variables through `get(name)`, which raises ValueError naming the variable,
  the value and what it accepts (for the C++ kernels' variables, mx_dcn.ops checks them before the
  extension first reads them);
- `mx-dcn info` lists the ones set and flags bad values and MX_DCN_* names nobody reads (a typo such
  as MX_DCN_BACKENDS would otherwise be ignored without a word);
- setup.py checks its build switches here too: it loads this file by path, so this module imports
  nothing but the standard library.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple

PREFIX = "MX_DCN_"
# The backends' names, in the registry's order (tests/test_registry.py checks they match it).
BACKENDS = ("cpu", "cuda", "ascendc", "cann", "portable")
# On/off switches: exactly what the C++ side (MX_DCN_DETERMINISTIC) understands too.
SWITCH = {"1": True, "true": True, "0": False, "false": False}


@dataclasses.dataclass(frozen=True)
class Variable:
    name: str
    read_by: str                        # "mx_dcn", "mx_dcn._C" (the C++ kernels), "setup.py" or a test/CI file
    accepts: str                        # the valid values, in words
    meaning: str
    parse: Callable[[str], object]      # text -> value; raises ValueError when the text is not accepted
    default: object = None              # the value when unset or empty


def _choice(*values: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in values:
            raise ValueError(raw)
        return raw
    return parse


def _switch(raw: str) -> bool:
    if raw not in SWITCH:
        raise ValueError(raw)
    return SWITCH[raw]


def _megabytes(minimum: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not (math.isfinite(value) and value >= minimum):
            raise ValueError(raw)
        return value
    return parse


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


_ON_OFF = "0, 1, false or true"

VARIABLES: Dict[str, Variable] = {v.name: v for v in (
    # read by the package at run time
    Variable("MX_DCN_BACKEND", "mx_dcn", "one of " + ", ".join(BACKENDS),
             "force this backend for every call (one that cannot take a call raises)", _choice(*BACKENDS)),
    Variable("MX_DCN_STRICT", "mx_dcn", _ON_OFF, "a fallback raises BackendFallbackError instead of warning",
             _switch, False),
    Variable("MX_DCN_WORKSPACE_MB", "mx_dcn", "a number of megabytes >= 1",
             "temporary memory one call may hold (default 256)", _megabytes(1), 256.0),
    Variable("MX_DCN_WORKSPACE_CACHE_MB", "mx_dcn", "a number of megabytes >= 0",
             "workspace the CPU kernel keeps between calls (default 64; 0 turns it off)", _megabytes(0), 64.0),
    Variable("MX_DCN_SIM_BUILD", "mx_dcn", "a directory",
             "where ci/ascend_sim.sh put the AscendC model library (default kernels_ascend/build_sim)", str),
    Variable("MX_DCN_CPU_ISA", "mx_dcn._C", "base, avx2 or avx512 (one this CPU supports)",
             "force the CPU kernel's sampling code", _choice("base", "avx2", "avx512")),
    Variable("MX_DCN_CPU_GEMM", "mx_dcn._C", "own or blas",
             "who runs the CPU kernel's float32 matrix products", _choice("own", "blas")),
    Variable("MX_DCN_TILE_KB", "mx_dcn._C", "a positive integer",
             "tuning: the CPU kernel's column tile, in KiB (default 1024)", _positive_int),
    Variable("MX_DCN_ROUND_TILES", "mx_dcn._C", "a positive integer",
             "tuning: tiles per round of the CPU backward (default 2)", _positive_int),
    Variable("MX_DCN_DETERMINISTIC", "mx_dcn, mx_dcn._C", _ON_OFF,
             "deterministic backward passes, as torch.use_deterministic_algorithms(True) asks: the registry "
             "skips backends without one (ascendc) and the CUDA backward takes its deterministic grad-x path",
             _switch, False),
    # read by setup.py when building
    Variable("MX_DCN_WITH_CUDA", "setup.py", "auto, 0, 1, false or true",
             "build the CUDA kernels: auto decides on evidence, 1 requires them, 0 skips them",
             _choice("auto", *SWITCH), "auto"),
    Variable("MX_DCN_NATIVE", "setup.py", _ON_OFF, "compile for this CPU only (-march=native)", _switch, False),
    # read by build_npu.py (setup.py's NPU part) when building
    Variable("MX_DCN_WITH_NPU", "build_npu.py", "auto, 0 or 1",
             "build the torch_npu glue: auto decides on evidence (torch_npu and a CANN toolkit), 1 requires it, "
             "0 skips the NPU path", _choice("auto", *SWITCH), "auto"),
    Variable("MX_DCN_NPU_OPP", "build_npu.py", "auto, 0 or 1",
             "build the AscendC custom-op package with the glue: 0 uses one installed separately, 1 requires it",
             _choice("auto", *SWITCH), "auto"),
    Variable("MX_DCN_SANITIZE", "setup.py", _ON_OFF, "build with AddressSanitizer and UBSan (ci/sanitize.sh)",
             _switch, False),
    # read by the tests and CI scripts
    Variable("MX_DCN_FUZZ_EXAMPLES", "tests/test_fuzz.py", "a positive integer",
             "examples per fuzz test (a long campaign)", _positive_int),
    Variable("MX_DCN_FUZZ_SEED", "tests/test_fuzz.py", "an integer", "another random sequence for the fuzz tests",
             int),
    Variable("MX_DCN_TEST_LARGE", "tests/test_limits.py", "0 or 1", "run the tests that need ~13 GB of RAM",
             _choice("0", "1"), "0"),
    Variable("MX_DCN_GLUE_CHECK", "ci/nvcc_check.sh", "0 or 1", "0 skips the syntax check of the CUDA glue",
             _choice("0", "1"), "1"),
    Variable("MX_DCN_SANITIZE_DIR", "ci/sanitize.sh", "a directory", "keep and reuse the sanitizer build there",
             str),
    Variable("MX_DCN_SANITIZE_EXAMPLES", "ci/sanitize.sh", "a positive integer",
             "examples per fuzz test under the sanitizers (default 20)", _positive_int),
)}


def _variable(name: str) -> Variable:
    try:
        return VARIABLES[name]
    except KeyError:
        raise KeyError(f"{name} is not a variable mx_dcn reads (mx_dcn/settings.py lists them)") from None


def parse(name: str, raw: Optional[str]):
    """The value of `name` when it is set to `raw` (None or "" gives the default); a ValueError
    naming the variable, the value and what it accepts when `raw` is not valid."""
    var = _variable(name)
    if raw is None or raw == "":
        return var.default
    try:
        return var.parse(raw)
    except ValueError:
        raise ValueError(f"{name}: expected {var.accepts}, got {raw!r}") from None


def get(name: str, environ: Optional[Mapping[str, str]] = None):
    """The value of environment variable `name` (see `parse`)."""
    return parse(name, (os.environ if environ is None else environ).get(name))


def check_all(names: Tuple[str, ...], environ: Optional[Mapping[str, str]] = None) -> None:
    """Raise the ValueError of the first of `names` whose value is not valid."""
    for name in names:
        get(name, environ)


def report(environ: Optional[Mapping[str, str]] = None) -> List[dict]:
    """Every MX_DCN_* variable set in `environ` (default: this process): name, value, who reads it, and
    `problem` -- None, or why the value is bad, or that no part of mx_dcn reads that name."""
    environ = os.environ if environ is None else environ
    rows = []
    for name in sorted(k for k in environ if k.startswith(PREFIX)):
        value = environ[name]
        var = VARIABLES.get(name)
        if var is None:
            close = [k for k in VARIABLES if _similar(k, name)]
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            rows.append(dict(name=name, value=value, read_by=None,
                             problem=f"not a variable mx_dcn reads; it has no effect{hint}"))
            continue
        try:
            parse(name, value)
            problem = None
        except ValueError as e:
            problem = str(e)
        rows.append(dict(name=name, value=value, read_by=var.read_by, problem=problem))
    return rows


def _similar(known: str, name: str) -> bool:
    """Whether `name` looks like a misspelling of `known` (one letter added, dropped or changed, or a
    prefix either way)."""
    a, b = known, name
    if a.startswith(b) or b.startswith(a):
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    # one edit apart
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return a[i + 1:] == b[i + 1:] or a[i + 1:] == b[i:] or a[i:] == b[i + 1:]
