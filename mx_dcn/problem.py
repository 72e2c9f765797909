"""The one validation layer: arguments in, a normalised `Problem` out, or a clear exception.

Every public entry point (the functional API, the autograd classes, `explain`, the CLI's checker)
goes through `describe`, so a call is judged by the same rules everywhere and before any kernel runs.
Errors name the argument, the expected and the actual value.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch

IntOrPair = Union[int, Sequence[int]]

FLOATING_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_DTYPE_NAMES = {"float32": torch.float32, "float": torch.float32, "fp32": torch.float32,
                "float64": torch.float64, "double": torch.float64, "fp64": torch.float64,
                "float16": torch.float16, "half": torch.float16, "fp16": torch.float16,
                "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


# The fields of a Problem that follow from the input's sizes, which torch.compile / torch.export may
# trace as symbols (in_channels is taken from the weight, whose shape the compiler keeps static).
SIZE_FIELDS = ("batch", "height", "width", "out_height", "out_width")


@dataclasses.dataclass(frozen=True)
class Problem:
    """A validated deformable-convolution call, normalised: everything a backend needs to decide
    whether it can take the call, and to run it. Tensors are not held, only their description."""

    batch: int
    in_channels: int
    height: int
    width: int
    out_channels: int
    kernel_h: int
    kernel_w: int
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    dilation: Tuple[int, int]
    groups: int
    deformable_groups: int
    out_height: int
    out_width: int
    has_mask: bool
    has_bias: bool
    dtype: torch.dtype
    device_type: str            # "cpu", "cuda", "npu", ... (the target, which may be declared)
    soc: Optional[str] = None   # e.g. "Ascend910B2"; None when unknown or irrelevant
    # True when the target device is not present in this process (declared for a machine we are not
    # on): selection then judges constraints only and assumes the target has its backends installed.
    declared_target: bool = False
    # Size fields not known when the backend is chosen (see without_sizes). They hold the placeholder
    # 1; a backend whose rules read them either has its kernel enforce those rules at run time or
    # declines the call.
    unknown_sizes: Tuple[str, ...] = ()

    def without_sizes(self) -> "Problem":
        """This problem with the sizes in SIZE_FIELDS replaced by the placeholder 1 and named in
        `unknown_sizes`: what the registry judges while torch.compile / torch.export trace a graph,
        which must serve every batch and image size the compiler lets through without a recompile
        (the compiler does not tell traced code which sizes it keeps symbolic)."""
        return dataclasses.replace(self, unknown_sizes=SIZE_FIELDS, **{f: 1 for f in SIZE_FIELDS})

    @property
    def kernel_taps(self) -> int:
        return self.kernel_h * self.kernel_w

    def summary(self) -> str:
        """One line a person can read: shapes and parameters."""
        mask = "mask" if self.has_mask else "no mask"
        bias = "bias" if self.has_bias else "no bias"
        n, h, w, ho, wo = ("?" if f in self.unknown_sizes else getattr(self, f) for f in SIZE_FIELDS)
        return (f"x=({n},{self.in_channels},{h},{w}) "
                f"w=({self.out_channels},{self.in_channels // self.groups},{self.kernel_h},{self.kernel_w}) "
                f"out=({n},{self.out_channels},{ho},{wo}) "
                f"stride={self.stride} padding={self.padding} dilation={self.dilation} "
                f"groups={self.groups} dg={self.deformable_groups} {mask}, {bias}, "
                f"{str(self.dtype).replace('torch.', '')}, {self.device_type}"
                + (f" ({self.soc})" if self.soc else ""))


def device_present(device_type: str) -> bool:
    """Whether this process can run on `device_type` now (never imports torch_npu itself)."""
    if device_type == "cpu":
        return True
    if device_type == "cuda":
        return torch.cuda.is_available()
    module = getattr(torch, device_type, None)  # torch.npu exists once torch_npu is imported
    is_available = getattr(module, "is_available", None)
    try:
        return bool(is_available()) if callable(is_available) else False
    except Exception:  # a broken driver is "not present", never an exception from explain()
        return False


def parse_dtype(value) -> torch.dtype:
    """'float32' / 'fp16' / torch.float16 -> torch.dtype (for the CLI and declared targets)."""
    if isinstance(value, torch.dtype):
        dtype = value
    else:
        dtype = _DTYPE_NAMES.get(str(value).replace("torch.", "").lower())
        if dtype is None:
            raise ValueError(f"dtype: expected one of {sorted(_DTYPE_NAMES)}, got {value!r}")
    if dtype not in FLOATING_DTYPES:
        raise TypeError(f"dtype: expected a floating dtype (float32, float64, float16, bfloat16), got {dtype}")
    return dtype


def _pair(name: str, value: IntOrPair, minimum: int) -> Tuple[int, int]:
    """int or 2-sequence of ints -> (h, w), each >= minimum; anything else names `name`."""
    if isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected an int or a pair of ints, got a Tensor")
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list, torch.Size)):
        if len(value) == 1:
            value = (value[0], value[0])
        if len(value) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                      for v in value):
            raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name}: expected an int or a pair of ints, got {type(value).__name__} {value!r}")
    if pair[0] < minimum or pair[1] < minimum:
        raise ValueError(f"{name}: expected every value >= {minimum}, got {pair}")
    return pair


def _positive_int(name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name}: expected a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value}")
    return int(value)


def _size(v):
    """A tensor size as an int -- a SymInt stays one: under torch.export with a dynamic batch, int()
    would specialise it to the example's value."""
    return v if isinstance(v, torch.SymInt) else int(v)


def _check_tensor(name: str, t, ndim: int, layout: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a Tensor of shape {layout}, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D tensor {layout}, got {t.dim()}-D shape {tuple(t.shape)}")
    if t.dtype not in FLOATING_DTYPES:
        raise TypeError(f"{name}: expected a floating dtype (float32, float64, float16, bfloat16), got {t.dtype}")


def describe(x, offset, mask, weight, bias=None, stride: IntOrPair = 1, padding: IntOrPair = 0,
             dilation: IntOrPair = 1, groups: int = 1, deformable_groups: int = 1, *,
             device: Optional[str] = None, soc: Optional[str] = None) -> Problem:
    """Validate a call and return its `Problem`. Tensors may live on the meta device.

    `device` declares the target device type ("cpu", "cuda", "npu") when it differs from where the
    tensors are (for `explain` on a machine without that device); `soc` declares the chip.
    Raises TypeError / ValueError naming the argument, the expected and the actual value.
    """
    _check_tensor("x", x, 4, "(N, C_in, H, W)")
    _check_tensor("weight", weight, 4, "(C_out, C_in/groups, kh, kw)")
    _check_tensor("offset", offset, 4, "(N, 2*deformable_groups*kh*kw, H_out, W_out)")
    if mask is not None:
        _check_tensor("mask", mask, 4, "(N, deformable_groups*kh*kw, H_out, W_out)")
    if bias is not None:
        _check_tensor("bias", bias, 1, "(C_out,)")
    stride_hw = _pair("stride", stride, 1)
    padding_hw = _pair("padding", padding, 0)
    dilation_hw = _pair("dilation", dilation, 1)
    groups = _positive_int("groups", groups)
    deformable_groups = _positive_int("deformable_groups", deformable_groups)

    named = [("x", x), ("offset", offset), ("mask", mask), ("weight", weight), ("bias", bias)]
    present = [(n, t) for n, t in named if t is not None]
    for n, t in present[1:]:
        if t.dtype != x.dtype:
            raise TypeError(f"{n}: expected dtype {x.dtype} (the dtype of x), got {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"{n}: expected device {x.device} (the device of x), got {t.device}")

    n, c_in, h, w = (_size(v) for v in x.shape)
    c_out, c_per_group, kh, kw = (_size(v) for v in weight.shape)
    if kh < 1 or kw < 1:
        raise ValueError(f"weight: expected a kernel of at least 1x1, got {kh}x{kw} (shape {tuple(weight.shape)})")
    if c_in < 1:
        raise ValueError(f"x: expected at least 1 input channel, got shape {tuple(x.shape)}")
    if c_in % groups != 0:
        raise ValueError(f"groups: expected a divisor of C_in={c_in}, got {groups}")
    if c_out % groups != 0:
        raise ValueError(f"groups: expected a divisor of C_out={c_out} (weight.shape[0]), got {groups}")
    if c_per_group != c_in // groups:
        raise ValueError(f"weight: expected shape[1] == C_in/groups = {c_in}/{groups} = {c_in // groups}, "
                         f"got {c_per_group} (shape {tuple(weight.shape)})")
    if c_in % deformable_groups != 0:
        raise ValueError(f"deformable_groups: expected a divisor of C_in={c_in}, got {deformable_groups}")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias: expected shape ({c_out},) (C_out), got {tuple(bias.shape)}")

    if h < 1 or w < 1:   # as F.conv2d: only the batch may be empty (padding would make taps of nothing)
        raise ValueError(f"x: expected a non-empty image (H, W >= 1), got shape {tuple(x.shape)}")
    (sh, sw), (ph, pw), (dh, dw) = stride_hw, padding_hw, dilation_hw
    h_out = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    w_out = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(
            f"x: spatial size {h}x{w} is too small for kernel {kh}x{kw} with padding {padding_hw} and "
            f"dilation {dilation_hw}: expected an output of at least 1x1, got {h_out}x{w_out}")

    taps = deformable_groups * kh * kw
    expected_offset = (n, 2 * taps, h_out, w_out)
    if tuple(offset.shape) != expected_offset:
        raise ValueError(f"offset: expected shape {expected_offset} = (N, 2*deformable_groups*kh*kw, H_out, W_out), "
                         f"got {tuple(offset.shape)}")
    if mask is not None:
        expected_mask = (n, taps, h_out, w_out)
        if tuple(mask.shape) != expected_mask:
            raise ValueError(f"mask: expected shape {expected_mask} = (N, deformable_groups*kh*kw, H_out, W_out), "
                             f"got {tuple(mask.shape)}")

    device_type = device if device is not None else x.device.type
    if device_type not in ("cpu", "cuda", "npu", "meta", "mps", "xpu", "privateuseone"):
        raise ValueError(f"device: expected 'cpu', 'cuda' or 'npu', got {device_type!r}")
    check_soc(device_type, soc)
    # in_channels from the weight (equal to x's, checked above): static even when x's is symbolic.
    return Problem(batch=n, in_channels=c_per_group * groups, height=h, width=w, out_channels=c_out, kernel_h=kh,
                   kernel_w=kw, stride=stride_hw, padding=padding_hw, dilation=dilation_hw,
                   groups=groups, deformable_groups=deformable_groups, out_height=h_out,
                   out_width=w_out, has_mask=mask is not None, has_bias=bias is not None,
                   dtype=x.dtype, device_type=device_type, soc=soc,
                   declared_target=not device_present(device_type))


def check_layer(in_channels, out_channels, kernel_size: IntOrPair, stride: IntOrPair = 1,
                padding: IntOrPair = 0, dilation: IntOrPair = 1, groups: int = 1,
                deformable_groups: int = 1, deformable_groups_name: str = "deformable_groups"):
    """A layer's constructor arguments, validated as calls are (errors name the argument): returns
    (kernel_size, stride, padding, dilation) as pairs."""
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups),
                        (deformable_groups_name, deformable_groups)):
        _positive_int(name, value)
    pairs = (_pair("kernel_size", kernel_size, 1), _pair("stride", stride, 1), _pair("padding", padding, 0),
             _pair("dilation", dilation, 1))
    if in_channels % groups:
        raise ValueError(f"groups: expected a divisor of in_channels={in_channels}, got {groups}")
    if out_channels % groups:
        raise ValueError(f"groups: expected a divisor of out_channels={out_channels}, got {groups}")
    if in_channels % deformable_groups:
        raise ValueError(f"{deformable_groups_name}: expected a divisor of in_channels={in_channels}, "
                         f"got {deformable_groups}")
    return pairs


def check_soc(device_type: str, soc: Optional[str]) -> None:
    """A chip name (soc) describes an NPU: with any other device it is a mistake, not a detail to ignore."""
    if soc is not None and device_type != "npu":
        raise ValueError(f"soc: names an NPU chip (e.g. 'Ascend910B2') and needs device 'npu', got soc={soc!r} "
                         f"with device {device_type!r}")


def normalize_bias(bias):
    """mx_driving's v1 API takes bias=False for 'no bias'; accept False/None/Tensor."""
    if bias is None or bias is False:
        return None
    if isinstance(bias, torch.Tensor):
        return bias
    raise TypeError(f"bias: expected a Tensor, None or False, got {type(bias).__name__} {bias!r}")
