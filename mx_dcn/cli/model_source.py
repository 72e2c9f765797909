"""A user's model for `mx-dcn check` and `mx-dcn regress record`: from `--model module:factory` (which may
return `(model, example_inputs)`) or `--config file.py` (an mmengine / mmdet / mmdet3d config built with
the registry), with inputs from the factory or synthesised from `--input-shape`. While the model is open,
`mx_dcn.use_in_mmcv()` is active when the model comes from a config or its module uses mmengine, so
mmcv's DCN layers build mx_dcn's and mmcv.ops calls are recorded too."""
from __future__ import annotations

import contextlib
import dataclasses
import sys
from typing import Any

from .args import PROG, UsageError, shape_any, user_frame


def add_arguments(p) -> None:
    """--model, --config, --input-shape and --trace-device."""
    p.add_argument("--model", metavar="MODULE:FACTORY",
                   help="a callable returning an nn.Module, or (nn.Module, example_inputs): a tuple of "
                        "positional arguments, a dict of keyword arguments or one tensor; tensors may be "
                        "nested in dicts/lists (mmdet3d inputs). e.g. mypkg.models:build_detector")
    p.add_argument("--config", metavar="FILE.py",
                   help="an mmdet/mmdet3d (mmengine) config file: its `model` is built with the registry "
                        "after mx_dcn.use_in_mmcv(); inputs from --input-shape (an mmengine model is "
                        "called as model(x, None, mode='tensor'))")
    p.add_argument("--input-shape", type=shape_any, action="append", metavar="N,C,H,W",
                   help="input shape; with --model/--config, give it once per model input")
    p.add_argument("--trace-device", choices=("meta", "cpu"), default="meta",
                   help="where the model runs to record its calls (default meta: nothing computed)")


@dataclasses.dataclass
class ModelSource:
    model: Any
    inputs: Any
    label: str               # what the output calls the model
    inputs_text: str         # where its inputs come from
    integration_note: str    # what use_in_mmcv() changed, or ""


def _openmmlab(force: bool):
    """mx_dcn.use_in_mmcv() when the model comes from a config (force) or its module imported mmengine."""
    if not force and "mmengine" not in sys.modules:
        return None
    from ..integrations.openmmlab import use_in_mmcv

    try:
        return use_in_mmcv()
    except ImportError as e:
        raise UsageError(str(e)) from None


def _build_from_config(path: str):
    """The model of an mmdet/mmdet3d (or any mmengine) config file, built with the registry."""
    try:
        from mmengine.config import Config
        from mmengine.registry import MODELS, init_default_scope
    except ImportError as e:
        raise UsageError(f"--config needs mmengine (pip install mmengine): {e}") from None
    try:
        cfg = Config.fromfile(path)
    except Exception as e:
        raise UsageError(f"--config: cannot read {path}: {type(e).__name__}: {e}") from None
    if "model" not in cfg:
        raise UsageError(f"--config: {path} has no 'model' entry")
    if cfg.get("default_scope"):
        init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model)


def _config_inputs(model, tensors):
    """An mmengine model (mmdet/mmdet3d detectors) is called as model(inputs, None, mode='tensor')."""
    try:
        from mmengine.model import BaseModel
    except ImportError:
        return tuple(tensors)
    if isinstance(model, BaseModel):
        return {"inputs": tensors[0] if len(tensors) == 1 else tensors, "data_samples": None, "mode": "tensor"}
    return tuple(tensors)


def _build(args):
    """(model, example inputs or None, label)."""
    import torch

    from .. import model_check

    if args.config:
        return _build_from_config(args.config), None, f"config {args.config}"
    built = model_check.load_factory(args.model)()
    inputs = None
    if isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], torch.nn.Module):
        built, inputs = built
    if not isinstance(built, torch.nn.Module):
        raise UsageError(f"--model: {args.model} returned {type(built).__name__}, expected an nn.Module "
                         "or (nn.Module, example_inputs)")
    return built, inputs, args.model


@contextlib.contextmanager
def opened(args, dtype, command: str):
    """The model of --model/--config with its inputs, as a ModelSource, or None when building it failed
    (the reason is printed, without a traceback). UsageError for wrong flags. With --input-shape the model
    is converted to `dtype` and the inputs made in it; `dtype` None keeps the model's own dtype (that of
    its first floating parameter, float32 without one)."""
    import torch

    from .. import model_check

    if bool(args.model) == bool(args.config):
        raise UsageError("give --model package.module:factory or --config file.py (one of them)")
    if args.model:
        try:  # import the user's module first: whether it uses mmengine decides the integration
            model_check.load_factory(args.model)
        except ValueError as e:
            raise UsageError(str(e)) from None
    integration = _openmmlab(force=bool(args.config))
    try:
        what = args.config or args.model
        try:
            model, inputs, label = _build(args)
        except UsageError:
            raise
        except Exception as e:  # the user's factory or config failed: say where
            print(f"{PROG} {command}: error: building {what} failed{user_frame(e)}: {type(e).__name__}: {e}",
                  file=sys.stderr)
            yield None
            return
        if inputs is not None and args.input_shape:
            raise UsageError(f"--model: {args.model} returned example inputs; drop --input-shape")
        if inputs is None:
            if not args.input_shape:
                raise UsageError("--model/--config needs --input-shape (once per model input), unless the "
                                 "factory returns (model, example_inputs)")
            if dtype is None:
                dtype = next((t.dtype for t in model.parameters() if t.is_floating_point()), torch.float32)
            model = model.to(dtype)  # the CLI's own model object: converting it is fine
            tensors = model_check.make_inputs(args.input_shape, dtype)
            inputs = _config_inputs(model, tensors) if args.config else tuple(tensors)
            inputs_text = "input " + " ".join("(" + ",".join(map(str, s)) + ")" for s in args.input_shape)
        else:
            inputs_text = "the factory's example inputs"
        note = ""
        if integration is not None:
            changed = integration.registered + integration.replaced
            note = ("mmcv: " + (f"mx_dcn registered as {', '.join(changed)}; " if changed else "")
                    + (f"{len(integration.patched)} mmcv.ops functions patched" if integration.patched
                       else f"mmcv.ops {integration.mmcv_ops}"))
        yield ModelSource(model, inputs, label, inputs_text, note)
    finally:
        if integration is not None:
            integration.undo()


def report_trace_failure(command: str, source: ModelSource, trace_device: str, error: Exception) -> None:
    print(f"{PROG} {command}: error: running {source.label} on {trace_device} failed{user_frame(error)}: "
          f"{type(error).__name__}: {error}", file=sys.stderr)
    if trace_device == "meta":
        print(f"{PROG} {command}: hint: a model that needs real values can be traced on CPU with "
              "--trace-device cpu", file=sys.stderr)

