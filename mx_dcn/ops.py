"""The registered torch operators of mx_dcn's native kernels: `torch.ops.mx_dcn.deform_conv2d` and
`torch.ops.mx_dcn.deform_conv2d_backward` (schemas in mx_dcn/csrc/ops.cpp, device kernels in
mx_dcn/csrc/cpu and mx_dcn/csrc/cuda).

Importing this module does not load the extension; `load()` does (once), then registers the fake
(meta) kernels, shared by every device, so that with the autograd kernel (mx_dcn/csrc/autograd.cpp)
the op works under `torch.compile(fullgraph=True)`, `torch.export` and `torch.library.opcheck`.
"""
from __future__ import annotations

import threading
from typing import Optional

import torch

from . import settings
from .workspace import cache_limit_from_env, get_workspace_budget

# The variables the C++ kernels read themselves (with no useful error of their own for a bad value):
# checked here before the extension is first used.
KERNEL_VARIABLES = ("MX_DCN_CPU_ISA", "MX_DCN_CPU_GEMM", "MX_DCN_TILE_KB", "MX_DCN_ROUND_TILES",
                    "MX_DCN_WORKSPACE_MB", "MX_DCN_WORKSPACE_CACHE_MB", "MX_DCN_DETERMINISTIC")
_lock = threading.Lock()
_module = None
_error: Optional[str] = None


def load():
    """The extension module mx_dcn._C, loaded and registered once; raises ImportError with the
    reason when it cannot be loaded, ValueError naming a variable of KERNEL_VARIABLES set to a bad value."""
    global _module, _error
    if _module is not None:
        return _module
    settings.check_all(KERNEL_VARIABLES)
    with _lock:
        if _module is None and _error is None:
            try:
                from . import _C  # noqa: F401  (registers the schemas and device kernels)
            except Exception as exc:  # ImportError, or an OSError/undefined symbol from a stale build
                _error = f"mx_dcn._C could not be imported ({type(exc).__name__}: {exc}); build it with " \
                         "`MAX_JOBS=1 python setup.py build_ext --inplace` or `pip install --no-build-isolation -e .`"
            else:
                _C.set_workspace_cache_limit(cache_limit_from_env())
                _register_python_parts()
                _module = _C
    if _module is None:
        raise ImportError(_error)
    return _module


def load_error() -> Optional[str]:
    """Why the extension cannot be loaded, or None when it loads."""
    try:
        load()
    except ImportError as exc:
        return str(exc)
    return None


def _sync_budget() -> None:
    """Hand the current workspace budget (mx_dcn.workspace) to the C++ kernels."""
    budget = get_workspace_budget()
    if _module.get_workspace_budget() != budget:
        _module.set_workspace_budget(budget)


def deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
    """Differentiable call of the registered op (arguments already validated, pairs as tuples)."""
    load()
    if not torch.compiler.is_compiling():  # a pybind call cannot be traced; compiled graphs use the
        _sync_budget()                       # budget last synced by an eager call
    return torch.ops.mx_dcn.deform_conv2d(x, offset, mask, weight, bias, list(stride), list(padding),
                                          list(dilation), groups, deformable_groups)


def workspace_peak_bytes() -> int:
    """Largest workspace (bytes) one native CPU call held since `reset_workspace_peak()`: the
    channels-last image copies, column tiles, staging buffers and converted weights it allocated."""
    return load().workspace_peak_bytes()


def reset_workspace_peak() -> None:
    load().reset_workspace_peak()


# ----------------------------------------------------------------------------------------------
# The workspace cache of the native CPU kernel: it keeps the buffers of its last calls, up to a limit,
# so the next call does not fault in fresh pages (a page fault per 4 KiB page: ~1,400 of them, about
# 3.5 ms, in a 7 ms (2,64,64,64,64) forward on the machine the benchmark ran on).

def set_workspace_cache_limit(nbytes: int) -> None:
    """Bytes of workspace buffers the native CPU kernel keeps between calls (process-wide). Buffers
    beyond it are freed now; 0 frees them all and turns the cache off."""
    if not isinstance(nbytes, int) or isinstance(nbytes, bool) or nbytes < 0:
        raise ValueError(f"nbytes: expected an int >= 0, got {nbytes!r}")
    load().set_workspace_cache_limit(nbytes)


def get_workspace_cache_limit() -> int:
    """The limit in bytes of the native CPU kernel's workspace cache."""
    return load().workspace_cache_limit()


def workspace_cache_bytes() -> int:
    """Bytes of workspace buffers the native CPU kernel holds between calls right now."""
    return load().workspace_cache_bytes()


def release_workspace_cache() -> None:
    """Frees the buffers the native CPU kernel keeps between calls (the limit stays)."""
    load().release_workspace_cache()


# ----------------------------------------------------------------------------------------------
# Fake kernels (device-independent)

def _out_size(size, kernel, stride, pad, dilation):
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _check_one_device(*tensors):
    # A meta tensor among real ones sends the call here; refuse it rather than return garbage.
    devices = {t.device for t in tensors if t is not None}
    if len(devices) > 1:
        raise ValueError(f"mx_dcn::deform_conv2d: expected all tensors on one device, got {sorted(map(str, devices))}")


def _fake_forward(input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups):
    _check_one_device(input, offset, mask, weight, bias)
    n, _, h, w = input.shape
    c_out, _, kh, kw = weight.shape
    ho = _out_size(h, kh, stride[0], padding[0], dilation[0])
    wo = _out_size(w, kw, stride[1], padding[1], dilation[1])
    return input.new_empty((n, c_out, ho, wo))


def _fake_backward(grad_output, input, offset, mask, weight, bias, stride, padding, dilation, groups,
                   deformable_groups, output_mask):
    _check_one_device(grad_output, input, offset, mask, weight, bias)
    def empty_like(t, wanted):
        if t is None or not wanted:
            return input.new_empty((0,))
        return t.new_empty(t.shape)  # contiguous, like the kernels' results

    return (empty_like(input, output_mask[0]), empty_like(offset, output_mask[1]),
            empty_like(mask, output_mask[2]), empty_like(weight, output_mask[3]),
            empty_like(bias, output_mask[4]))


def _register_python_parts() -> None:
    torch.library.register_fake("mx_dcn::deform_conv2d")(_fake_forward)
    torch.library.register_fake("mx_dcn::deform_conv2d_backward")(_fake_backward)
