"""Other frameworks' deformable-convolution calls on mx_dcn, with their signatures and conventions.

- `mx_dcn.compat.torchvision`: `deform_conv2d(input, offset, weight, bias, stride, padding, dilation,
  mask)` (groups inferred from shapes) and the `DeformConv2d` layer;
- `mx_dcn.compat.paddle`: `deform_conv2d(x, offset, weight, bias, stride, padding, dilation,
  deformable_groups, groups, mask, name)` and the `DeformConv2D` layer;
- `mx_dcn.compat.mindspore`: `deformable_conv2d(x, weight, offsets, kernel_size, strides, padding, bias,
  dilations, groups, deformable_groups, modulated)` with MindSpore's packed (dx, dy, mask) offsets.

Layout converters between the canonical, MindSpore-packed and CANN-planar offset layouts live in
`mx_dcn.layouts`.
"""

from . import mindspore, paddle, torchvision  # noqa: E402,F401  (light: they only wrap mx_dcn's API)
