// Argument checks of mx_dcn::deform_conv2d shared by the CPU and CUDA kernels: what every device
// requires of the tensors' shapes. Each check names the argument, the expected and the actual value.
// The Python side (mx_dcn/problem.py) checks the same before any kernel runs; these guard the raw op.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "common/sampling.h"

namespace mx_dcn {

// The sizes one call implies, taken from input (N, C, H, W) and weight (C_out, C/groups, kh, kw).
struct OpShape {
  int64_t batch, channels, height, width, out_channels, kernel_h, kernel_w, out_h, out_w;
};

// Ranks, the stride / padding / dilation pairs, groups and deformable groups against the channel
// counts, and the output extent; returns the sizes.
inline OpShape check_op_shape(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& offset,
                              at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                              int64_t groups, int64_t dg) {
  TORCH_CHECK_VALUE(input.dim() == 4, "input: expected (N, C, H, W), got shape ", input.sizes());
  TORCH_CHECK_VALUE(weight.dim() == 4, "weight: expected (C_out, C_in/groups, kh, kw), got shape ", weight.sizes());
  TORCH_CHECK_VALUE(offset.dim() == 4, "offset: expected a 4-D tensor, got shape ", offset.sizes());
  TORCH_CHECK_VALUE(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
                    "stride, padding, dilation: expected pairs");
  TORCH_CHECK_VALUE(stride[0] >= 1 && stride[1] >= 1, "stride: expected >= 1, got ", stride);
  TORCH_CHECK_VALUE(padding[0] >= 0 && padding[1] >= 0, "padding: expected >= 0, got ", padding);
  TORCH_CHECK_VALUE(dilation[0] >= 1 && dilation[1] >= 1, "dilation: expected >= 1, got ", dilation);
  TORCH_CHECK_VALUE(groups >= 1 && dg >= 1, "groups, deformable_groups: expected >= 1, got ", groups, ", ", dg);
  OpShape s;
  s.batch = input.size(0);
  s.channels = input.size(1);
  s.height = input.size(2);
  s.width = input.size(3);
  s.out_channels = weight.size(0);
  s.kernel_h = weight.size(2);
  s.kernel_w = weight.size(3);
  s.out_h = conv_out_size(s.height, s.kernel_h, stride[0], padding[0], dilation[0]);
  s.out_w = conv_out_size(s.width, s.kernel_w, stride[1], padding[1], dilation[1]);
  TORCH_CHECK_VALUE(s.channels >= 1 && s.kernel_h >= 1 && s.kernel_w >= 1, "input/weight: empty channels or kernel");
  TORCH_CHECK_VALUE(s.channels % groups == 0 && s.out_channels % groups == 0, "groups: expected a divisor of C_in=",
                    s.channels, " and C_out=", s.out_channels, ", got ", groups);
  TORCH_CHECK_VALUE(weight.size(1) == s.channels / groups, "weight: expected shape[1] == C_in/groups = ",
                    s.channels / groups, ", got ", weight.size(1));
  TORCH_CHECK_VALUE(s.channels % dg == 0, "deformable_groups: expected a divisor of C_in=", s.channels, ", got ", dg);
  TORCH_CHECK_VALUE(s.out_h >= 1 && s.out_w >= 1, "input: too small for the kernel, output would be ", s.out_h, "x",
                    s.out_w);
  return s;
}

// offset (N, 2*dg*kh*kw, H_out, W_out), mask (N, dg*kh*kw, H_out, W_out) and bias (C_out,).
inline void check_sampling_shapes(const OpShape& s, int64_t dg, const at::Tensor& offset,
                                  const std::optional<at::Tensor>& mask, const std::optional<at::Tensor>& bias) {
  const int64_t taps = dg * s.kernel_h * s.kernel_w;
  TORCH_CHECK_VALUE(offset.sizes() == at::IntArrayRef({s.batch, 2 * taps, s.out_h, s.out_w}),
                    "offset: expected shape (", s.batch, ", ", 2 * taps, ", ", s.out_h, ", ", s.out_w, "), got ",
                    offset.sizes());
  if (mask) {
    TORCH_CHECK_VALUE(mask->sizes() == at::IntArrayRef({s.batch, taps, s.out_h, s.out_w}), "mask: expected shape (",
                      s.batch, ", ", taps, ", ", s.out_h, ", ", s.out_w, "), got ", mask->sizes());
  }
  if (bias) {
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == s.out_channels, "bias: expected shape (", s.out_channels,
                      ",), got ", bias->sizes());
  }
}

}  // namespace mx_dcn
