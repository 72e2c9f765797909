"""mx_dcn under OpenMMLab training (mmengine, mmcv, mmdet, mmdet3d): one call before the model is built.

    import mx_dcn
    mx_dcn.use_in_mmcv()          # or: with mx_dcn.use_in_mmcv(): ...   (undone on leaving)

1. Registry. mmcv's layer names 'DCNv2' and 'DCN', and the class names 'ModulatedDeformConv2dPack' and
   'DeformConv2dPack', are registered in mmengine's MODELS registry with mx_dcn.nn's layers wherever
   mmcv's own are absent (mmcv built without its ops, e.g. mmcv-lite on an NPU box). A backbone's
   `dcn=dict(type='DCNv2', deform_groups=1)` or a head's `dcn_config` then builds mx_dcn's layer through
   `mmcv.cnn.build_conv_layer`. `replace=True` replaces mmcv's own registrations as well.
2. Patch (mmcv built with its ops). The functions mmcv's layers call -- `modulated_deform_conv2d` and
   `deform_conv2d` with their Function classes, in mmcv.ops.modulated_deform_conv, mmcv.ops.deform_conv,
   mmcv.ops and every loaded module that imported them -- become mx_dcn's, with mmcv's signatures
   (deform_groups=...) and its dtype rule (input, mask, weight, bias cast to the offset's dtype, so
   mmcv's layers keep working under autocast), as
   DrivingSDK's patcher does for mx_driving. mmcv's layer classes stay (isinstance checks, init and
   checkpoints unchanged); their forward now runs on mx_dcn's backends, and `mx-dcn check` sees them.

mx_dcn's layers have mmcv's parameter names (weight, bias, conv_offset.weight, conv_offset.bias), so a
checkpoint saved with mmcv's layers loads unchanged. The returned `MmcvIntegration` says what was
registered, replaced, kept and patched; `.undo()` (or the end of the `with` block) restores all of it.
"""
from __future__ import annotations

import dataclasses
import sys
import threading
from typing import Callable, Dict, List, Tuple

import torch

from .. import functional
from .. import nn as dnn

# mmcv's registry names (mmcv/ops/modulated_deform_conv.py and deform_conv.py register 'DCNv2' and
# 'DCN'), plus the class names a config may use.
LAYER_NAMES: Dict[str, type] = {
    "DCNv2": dnn.ModulatedDeformConv2dPack,
    "ModulatedDeformConv2dPack": dnn.ModulatedDeformConv2dPack,
    "DCN": dnn.DeformConv2dPack,
    "DeformConv2dPack": dnn.DeformConv2dPack,
}



def _like_offset(offset, *tensors):
    """mmcv's Functions cast input, mask, weight and bias to the offset's dtype: under autocast the
    offset conv returns float16 while the layer's weight stays float32 (mmcv's AMP rule)."""
    return [None if not isinstance(t, torch.Tensor) else t.type_as(offset) for t in tensors]


def _mmcv_modulated_deform_conv2d(input, offset, mask, weight, bias=None, stride=1, padding=0, dilation=1,
                                  groups=1, deform_groups=1):
    """mmcv.ops.modulated_deform_conv2d's signature and casting, on mx_dcn."""
    input, mask, weight, bias = _like_offset(offset, input, mask, weight, bias)
    return functional.modulated_deform_conv2d(input, offset, mask, weight, bias, stride, padding, dilation,
                                              groups, deform_groups)


def _mmcv_deform_conv2d(input, offset, weight, stride=1, padding=0, dilation=1, groups=1, deform_groups=1,
                        bias=False, im2col_step=32):
    """mmcv.ops.deform_conv2d's signature and casting, on mx_dcn."""
    input, weight = _like_offset(offset, input, weight)
    if isinstance(bias, torch.Tensor):
        bias = bias.type_as(offset)
    return functional.deform_conv2d(input, offset, weight, stride, padding, dilation, groups, deform_groups,
                                    bias, im2col_step)


class _MmcvModulatedDeformConv2dFunction:
    """What mmcv's ModulatedDeformConv2dFunction becomes under the patch: `apply` as mmcv's."""
    apply = staticmethod(_mmcv_modulated_deform_conv2d)


class _MmcvDeformConv2dFunction:
    """What mmcv's DeformConv2dFunction becomes under the patch: `apply` as mmcv's."""
    apply = staticmethod(_mmcv_deform_conv2d)


# The mmcv.ops attributes the patch replaces, by the module that defines them (mmcv 2.x:
# modulated_deform_conv2d = ModulatedDeformConv2dFunction.apply, deform_conv2d = DeformConv2dFunction.apply),
# with mx_dcn's under mmcv's signatures and dtype casting.
PATCHED_FUNCTIONS: Dict[str, Dict[str, object]] = {
    "mmcv.ops.modulated_deform_conv": {
        "modulated_deform_conv2d": _mmcv_modulated_deform_conv2d,
        "ModulatedDeformConv2dFunction": _MmcvModulatedDeformConv2dFunction,
    },
    "mmcv.ops.deform_conv": {
        "deform_conv2d": _mmcv_deform_conv2d,
        "DeformConv2dFunction": _MmcvDeformConv2dFunction,
    },
}

_lock = threading.Lock()


@dataclasses.dataclass
class MmcvIntegration:
    """What `use_in_mmcv` changed. A context manager: leaving the block undoes it."""

    registered: List[str] = dataclasses.field(default_factory=list)  # names added to MODELS
    replaced: List[str] = dataclasses.field(default_factory=list)    # mmcv's registrations replaced
    kept: List[str] = dataclasses.field(default_factory=list)        # mmcv's registrations left alone
    patched: List[str] = dataclasses.field(default_factory=list)     # "module.attribute" now mx_dcn's
    mmcv_ops: str = ""                                               # "available" or why not
    _undo: List[Callable[[], None]] = dataclasses.field(default_factory=list, repr=False)

    def undo(self) -> None:
        """Restore every registration and attribute this call changed (newest first)."""
        with _lock:
            while self._undo:
                self._undo.pop()()

    def __enter__(self) -> "MmcvIntegration":
        return self

    def __exit__(self, *exc) -> None:
        self.undo()

    def __str__(self) -> str:
        none = "(none)"
        return "\n".join([
            "mx_dcn in mmcv:",
            f"  registered in mmengine MODELS: {', '.join(self.registered) or none}",
            f"  replaced mmcv's registration:  {', '.join(self.replaced) or none}",
            f"  left to mmcv's own layers:     {', '.join(self.kept) or none}"
            + (" (use_in_mmcv(replace=True) replaces them)" if self.kept else ""),
            f"  mmcv.ops: {self.mmcv_ops}",
            f"  patched: {', '.join(self.patched) or none}",
        ])


def _mmcv_ops_status() -> str:
    """Import mmcv.ops (which registers mmcv's own layers); 'available', or why not."""
    try:
        import mmcv.ops  # noqa: F401
    except ImportError as e:  # mmcv-lite / MMCV_WITH_OPS=0: no compiled ops (mmcv._ext)
        return f"not importable ({type(e).__name__}: {e}); registry only"
    return "available"


def _register(models, report: MmcvIntegration, replace: bool) -> None:
    table = models._module_dict  # mmengine keeps name -> class here; it has no public unregister
    for name, cls in LAYER_NAMES.items():
        old = table.get(name)
        if old is cls:
            continue  # already ours (an earlier call)
        if old is not None and not replace:
            report.kept.append(name)
            continue
        models.register_module(name=name, module=cls, force=True)
        (report.replaced if old is not None else report.registered).append(name)
        report._undo.append(lambda name=name, old=old: table.__setitem__(name, old) if old is not None
                            else table.pop(name, None))


def _patch(report: MmcvIntegration) -> None:
    originals: Dict[int, Tuple[object, object]] = {}  # id(original) -> (original, replacement)
    for module_name, attrs in PATCHED_FUNCTIONS.items():
        module = sys.modules[module_name]
        for attr, replacement in attrs.items():
            original = getattr(module, attr, None)
            if original is not None and original is not replacement:
                originals[id(original)] = (original, replacement)
    # Wherever a loaded module holds one of the originals (mmcv.ops re-exports them; mmdet, mmdet3d and
    # user code may have imported them by name), it gets the replacement.
    swaps = list(originals.values())
    # Runs last on undo: a module imported while the patch was active took the replacements by name.
    report._undo.append(lambda: _swap_everywhere([(new, old) for old, new in swaps]))
    report.patched += _swap_everywhere(swaps, report._undo)


def _swap_everywhere(swaps: List[Tuple[object, object]], undo=None) -> List[str]:
    """In every loaded module but mx_dcn's, each attribute holding a `from` object of `swaps`
    ((from, to) pairs) gets its `to`; returns the "module.attribute" names changed."""
    by_id = {id(old): (old, new) for old, new in swaps}
    changed = []
    for module_name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if module is None or namespace is None or module_name.startswith("mx_dcn"):
            continue
        for attr, value in list(namespace.items()):
            hit = by_id.get(id(value))
            if hit is not None and hit[0] is value:
                setattr(module, attr, hit[1])
                changed.append(f"{module_name}.{attr}")
                if undo is not None:
                    undo.append(lambda m=module, a=attr, v=value: setattr(m, a, v))
    return changed


def use_in_mmcv(*, replace: bool = False, patch: bool = True) -> MmcvIntegration:
    """Make mmcv-based models use mx_dcn's deformable convolutions (see the module's docstring).

    replace: also replace mmcv's own registered 'DCN'/'DCNv2' layers (when mmcv has its ops) with
        mx_dcn's in the registry; default False keeps them (their forward is patched instead).
    patch: replace the functions mmcv's layers call, when mmcv.ops is importable (default True).
    Call it before the model is built. Returns an MmcvIntegration: print it to see what changed;
    `.undo()` or `with mx_dcn.use_in_mmcv(): ...` restores mmcv's state.
    """
    for name, value in (("replace", replace), ("patch", patch)):
        if not isinstance(value, bool):
            raise TypeError(f"{name}: expected True or False, got {value!r}")
    try:
        from mmengine.registry import MODELS
    except ImportError as e:
        raise ImportError("mx_dcn.use_in_mmcv needs mmengine (pip install mmengine; mmcv for "
                          f"build_conv_layer): {e}") from None
    report = MmcvIntegration(mmcv_ops=_mmcv_ops_status())
    with _lock:
        try:
            _register(MODELS, report, replace)
            if patch and report.mmcv_ops == "available":
                _patch(report)
        except BaseException:   # leave nothing half-applied without a handle to undo it
            while report._undo:
                report._undo.pop()()
            raise
    return report
