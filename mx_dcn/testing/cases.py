"""The case suite: one list of problems that every backend, the tests and `mx-dcn regress` share.

Each case is small enough for the float64 oracle, and together they cover kernel sizes 1x1, 3x3,
3x1 and 5x5, stride, padding, dilation, groups, deformable groups, with and without mask and bias,
offsets that push samples outside the image and onto integer points, masks with zeros, odd sizes,
an empty batch, and the calls mx_driving's NPU path gets wrong (stride 2, padding 0, dilation 2 at
c_in 256, a bias, groups > 1).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

import torch

# (rtol, atol) per dtype for comparisons against the float64 oracle; the error is measured as
# max|got - want| <= atol + rtol * max|want| over the whole tensor (see `max_error`).
TOLERANCES: Dict[torch.dtype, Tuple[float, float]] = {
    torch.float64: (1e-9, 1e-9),
    torch.float32: (2e-5, 2e-5),
    torch.float16: (4e-3, 4e-3),
    torch.bfloat16: (3e-2, 3e-2),
}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    n: int
    c_in: int
    h: int
    w: int
    c_out: int
    kh: int = 3
    kw: int = 3
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (1, 1)
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1
    deformable_groups: int = 1
    mask: bool = True
    bias: bool = True
    offsets: str = "random"   # random | zero | outside | integer
    mask_kind: str = "random"  # random | zeros (a quarter of the entries exactly 0)

    @property
    def out_hw(self) -> Tuple[int, int]:
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        return ((self.h + 2 * ph - dh * (self.kh - 1) - 1) // sh + 1,
                (self.w + 2 * pw - dw * (self.kw - 1) - 1) // sw + 1)

    def args(self) -> Dict[str, object]:
        """The non-tensor arguments, by their API names."""
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation,
                    groups=self.groups, deformable_groups=self.deformable_groups)

    def make_inputs(self, dtype: torch.dtype = torch.float64, device="cpu", seed: int = 0
                    ) -> Dict[str, Optional[torch.Tensor]]:
        """x, offset, mask, weight, bias generated in float64 on CPU from `seed`, then converted,
        so every device and dtype sees the same values (up to rounding)."""
        g = torch.Generator().manual_seed(seed)
        ho, wo = self.out_hw
        taps = self.deformable_groups * self.kh * self.kw
        x = torch.randn(self.n, self.c_in, self.h, self.w, generator=g, dtype=torch.float64)
        weight = torch.randn(self.c_out, self.c_in // self.groups, self.kh, self.kw, generator=g,
                             dtype=torch.float64) / (self.c_in // self.groups * self.kh * self.kw) ** 0.5
        if self.offsets == "zero":
            offset = torch.zeros(self.n, 2 * taps, ho, wo, dtype=torch.float64)
        elif self.offsets == "integer":
            offset = torch.randint(-2, 3, (self.n, 2 * taps, ho, wo), generator=g).double()
        elif self.offsets == "outside":
            # Half the samples pushed well past an edge, the rest near it, some straddling -1 / H.
            span = float(max(self.h, self.w))
            offset = (torch.rand(self.n, 2 * taps, ho, wo, generator=g, dtype=torch.float64) - 0.5) * 2.5 * span
        else:
            offset = torch.randn(self.n, 2 * taps, ho, wo, generator=g, dtype=torch.float64) * 1.5
        mask = None
        if self.mask:
            mask = torch.rand(self.n, taps, ho, wo, generator=g, dtype=torch.float64)
            if self.mask_kind == "zeros":
                mask = torch.where(torch.rand(mask.shape, generator=g, dtype=torch.float64) < 0.25,
                                   torch.zeros_like(mask), mask)
        bias = torch.randn(self.c_out, generator=g, dtype=torch.float64) if self.bias else None

        def conv(t):
            return None if t is None else t.to(device=device, dtype=dtype)

        return {"x": conv(x), "offset": conv(offset), "mask": conv(mask), "weight": conv(weight),
                "bias": conv(bias)}


CASES = (
    Case("k1x1", 2, 4, 5, 6, 3, kh=1, kw=1, padding=(0, 0)),
    Case("k3x3", 2, 6, 7, 8, 4),
    Case("k3x1", 2, 4, 6, 5, 3, kh=3, kw=1, padding=(1, 0)),
    Case("k5x5", 1, 3, 9, 9, 2, kh=5, kw=5, padding=(2, 2)),
    Case("stride2", 2, 4, 9, 10, 3, stride=(2, 2)),
    Case("stride_pad_dil_mixed", 1, 4, 11, 9, 3, stride=(2, 1), padding=(0, 2), dilation=(2, 1)),
    Case("dilation2", 1, 4, 9, 9, 3, padding=(2, 2), dilation=(2, 2)),
    Case("padding0", 2, 4, 7, 7, 3, padding=(0, 0)),
    Case("groups2", 2, 8, 6, 7, 6, groups=2),
    Case("dg2", 2, 8, 6, 7, 4, deformable_groups=2),
    Case("groups2_dg4", 1, 8, 6, 6, 4, groups=2, deformable_groups=4),
    Case("v1_no_mask", 2, 4, 6, 7, 3, mask=False),
    Case("no_bias", 2, 4, 6, 7, 3, bias=False),
    Case("offsets_outside", 2, 4, 6, 7, 3, offsets="outside"),
    Case("offsets_integer", 2, 4, 6, 7, 3, offsets="integer"),
    Case("zero_offsets", 1, 4, 6, 7, 3, offsets="zero"),
    Case("mask_zeros", 2, 4, 6, 7, 3, mask_kind="zeros"),
    Case("odd_sizes", 1, 5, 1, 11, 3, kh=1, kw=3, padding=(0, 1)),
    Case("empty_batch", 0, 4, 6, 7, 3),
    # What mx_driving's NPU path gets wrong: stride 2, padding 0, dilation 2 at c_in 256, bias, groups.
    Case("c256_stride2_pad0_dil2", 1, 256, 11, 11, 16, padding=(0, 0), stride=(2, 2), dilation=(2, 2)),
    Case("c64_groups2_bias_maskzeros", 1, 64, 6, 6, 8, groups=2, mask_kind="zeros"),
)

CASES_BY_NAME = {c.name: c for c in CASES}

# Shapes that reach the edges of the CPU kernel's matrix products (its own GEMM's register blocks of 6 rows
# by 64 columns): rows not a multiple of 6, column blocks ending in a partial vector, conv groups, a single
# tile's product split by blocks of 64 output channels. Run by the CPU kernel's tests, not by every backend.
GEMM_EDGE_CASES = (
    # 117 pixels (tiles of 59 and 58 rows), C_out 100 = a 64-column block + 2 vectors + 4 columns
    Case("gemm_cout100", 2, 20, 9, 13, 100),
    # two conv groups of 50 output channels (3 vectors + 2 columns), 24 input channels each (K*Cg = 216 =
    # 3 blocks of 64 + 24), 77 pixels
    Case("gemm_groups_cout50", 1, 48, 7, 11, 100, groups=2, deformable_groups=2),
    # one image of one tile (in float32 and the half types, at the default budget; float64 takes 2): its
    # product (49 x 2304 by 2304 x 80 per group, over 2^24 multiply-adds) split by 64 output channels
    # within each conv group of 80 (64 + 16)
    Case("gemm_one_tile_split_groups", 1, 512, 7, 7, 160, groups=2, deformable_groups=2),
)


def max_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max|got - want| measured in float64 (0.0 for empty tensors)."""
    if got.numel() == 0:
        return 0.0
    return float((got.detach().double().cpu() - want.detach().double().cpu()).abs().max())


def within_tolerance(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> Tuple[bool, float, float]:
    """(ok, error, allowed) under TOLERANCES[dtype], relative to the magnitude of `want`."""
    rtol, atol = TOLERANCES[dtype]
    scale = float(want.detach().double().abs().max()) if want.numel() else 0.0
    allowed = atol + rtol * scale
    err = max_error(got, want)
    return err <= allowed, err, allowed
