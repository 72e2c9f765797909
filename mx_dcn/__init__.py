"""mx_dcn: deformable convolution (DCNv1 and modulated DCNv2) for PyTorch on CPU, CUDA and Ascend NPU.

    import mx_dcn
    out = mx_dcn.modulated_deform_conv2d(x, offset, mask, weight, bias, stride=1, padding=1)
    print(mx_dcn.explain(x, offset, mask, weight, bias, padding=1, device="npu", soc="Ascend910B2"))

Importing mx_dcn loads no extension, no torch_npu and no CUDA: backends load on first use.
"""
from .functional import (DeformConv2dFunction, ModulatedDeformConv2dFunction, deform_conv2d, explain,
                         modulated_deform_conv2d)
from .problem import Problem, describe
from .registry import (BackendFallbackError, BackendUnusableError, SelectionReport, backend_names,
                       get_backend, strict, use_backend)
from .ops import (get_workspace_cache_limit, release_workspace_cache, set_workspace_cache_limit,
                  workspace_cache_bytes)
from .workspace import get_workspace_budget, set_workspace_budget, workspace_budget

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("nn", "compat", "onnx", "layouts", "ops", "bench", "regress", "testing", "integrations")


def use_in_mmcv(*, replace: bool = False, patch: bool = True):
    """Make mmcv/mmdet/mmdet3d models built from configs use mx_dcn: registers mx_dcn's layers as
    'DCNv2'/'DCN' where mmcv's are absent and patches mmcv.ops' functions where present (details:
    mx_dcn.integrations.openmmlab). Returns what changed; `.undo()` or a `with` block restores it."""
    from .integrations.openmmlab import use_in_mmcv as _use_in_mmcv
    return _use_in_mmcv(replace=replace, patch=patch)


def __getattr__(name):
    """`mx_dcn.nn`, `mx_dcn.compat`, ... without importing them (or an extension) at `import mx_dcn`."""
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'mx_dcn' has no attribute {name!r}")

__all__ = [
    "modulated_deform_conv2d", "deform_conv2d", "ModulatedDeformConv2dFunction", "DeformConv2dFunction",
    "explain", "Problem", "describe", "SelectionReport", "BackendFallbackError", "BackendUnusableError",
    "backend_names", "get_backend", "use_backend", "strict", "get_workspace_budget",
    "set_workspace_budget", "workspace_budget", "get_workspace_cache_limit", "set_workspace_cache_limit",
    "workspace_cache_bytes", "release_workspace_cache", "use_in_mmcv", "__version__",
]
