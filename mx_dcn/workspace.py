"""The workspace budget: how many bytes of temporary buffers one call may hold at a time.

Backends split the batch (and, for one large image, the output rows) into chunks whose workspace
fits the budget, so memory does not grow with the batch size. Set it with the environment variable
MX_DCN_WORKSPACE_MB, `set_workspace_budget(bytes)`, or the `workspace_budget(bytes)` context manager.

The workspace cache's limit from MX_DCN_WORKSPACE_CACHE_MB (default 64; 0 turns it off) is read here;
the cache itself lives in the native CPU kernel and is controlled through mx_dcn.ops
(`set_workspace_cache_limit(bytes)`, `release_workspace_cache()`).
"""
from __future__ import annotations

import contextlib
import threading

from . import settings

_MIN_BUDGET_BYTES = 1024 * 1024
_local = threading.local()
_global_budget = None


def _from_env() -> int:
    return int(settings.get("MX_DCN_WORKSPACE_MB") * 1024 * 1024)


def _check(nbytes: int, name: str) -> int:
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < _MIN_BUDGET_BYTES:
        raise ValueError(f"{name}: expected at least {_MIN_BUDGET_BYTES} bytes (1 MiB), got {nbytes!r}")
    return nbytes


def get_workspace_budget() -> int:
    """The budget in bytes in force for this thread."""
    local = getattr(_local, "budget", None)
    if local is not None:
        return local
    return _global_budget if _global_budget is not None else _from_env()


def set_workspace_budget(nbytes: int) -> None:
    """Set the process-wide budget in bytes (None restores the default / environment)."""
    global _global_budget
    _global_budget = None if nbytes is None else _check(nbytes, "nbytes")


@contextlib.contextmanager
def workspace_budget(nbytes: int):
    """Use `nbytes` as the budget inside the block (this thread only)."""
    previous = getattr(_local, "budget", None)
    _local.budget = _check(nbytes, "nbytes")
    try:
        yield
    finally:
        _local.budget = previous


def chunk_size(total: int, bytes_per_item: int, budget: int = None) -> int:
    """How many of `total` items (each needing `bytes_per_item` of workspace) fit the budget; >= 1."""
    budget = get_workspace_budget() if budget is None else budget
    if total <= 0:
        return 1
    return max(1, min(total, budget // max(1, bytes_per_item)))


def cache_limit_from_env() -> int:
    """MX_DCN_WORKSPACE_CACHE_MB in bytes (the default when unset); a ValueError naming it when malformed."""
    return int(settings.get("MX_DCN_WORKSPACE_CACHE_MB") * 1024 * 1024)
