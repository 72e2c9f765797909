// The shape of one launch of the CUDA sampling kernels, and the choice of index width.
// Plain C++ (no CUDA, no torch): the host side of any framework can fill it, and it is unit-tested
// with the host compiler.
#pragma once

#include <cstdint>
#include <limits>

// The size helpers are used inside kernels too.
#if defined(__CUDACC__)
#define MXDCN_GEO_HD __host__ __device__
#else
#define MXDCN_GEO_HD
#endif

namespace mx_dcn_cuda {

// One chunk of `batch` images. Tensor layouts:
//   x, grad x     element (n, c, h, w) at n*x_stride_n + c*x_stride_c + (h*width + w)*x_stride_pixel
//                 (NCHW: (C*H*W, H*W, 1); channels-last NHWC: (H*W*C, 1, C) -- no copy needed)
//   offset        contiguous (batch, dg*kh*kw*2, out_h, out_w), channels ordered (dg, kh, kw, [dy, dx])
//   mask          contiguous (batch, dg*kh*kw, out_h, out_w), or absent (DCNv1)
//   columns       element (c, k, n, p) at (c*kh*kw + k)*col_stride_row + n*col_stride_n + p,
//                 p = ho*out_w + wo; the classic (C*K, batch*Ho*Wo) matrix has col_stride_row =
//                 batch*Ho*Wo, col_stride_n = Ho*Wo.
struct Geometry {
  int64_t batch = 0, channels = 0, height = 0, width = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t out_h = 0, out_w = 0;
  int64_t deformable_groups = 1;
  int64_t x_stride_n = 0, x_stride_c = 0, x_stride_pixel = 1;
  int64_t col_stride_row = 0, col_stride_n = 0;

  MXDCN_GEO_HD int64_t taps() const { return kernel_h * kernel_w; }
  MXDCN_GEO_HD int64_t out_pixels() const { return out_h * out_w; }
  MXDCN_GEO_HD int64_t group_channels() const { return channels / deformable_groups; }
  // Sample points: one per (image, deformable group, tap, output pixel). The sampling kernels run
  // one thread per point and apply its bilinear plan to every channel of the group.
  MXDCN_GEO_HD int64_t points() const { return batch * deformable_groups * taps() * out_pixels(); }
  // The deterministic backward lists one entry per (point, corner).
  MXDCN_GEO_HD int64_t entries() const { return 4 * points(); }
};

// Fills the layout fields for contiguous NCHW x and the classic column matrix.
inline Geometry with_default_layout(Geometry g) {
  g.x_stride_pixel = 1;
  g.x_stride_c = g.height * g.width;
  g.x_stride_n = g.channels * g.height * g.width;
  g.col_stride_n = g.out_pixels();
  g.col_stride_row = g.batch * g.out_pixels();
  return g;
}

// Empty string when the geometry is launchable; otherwise what is wrong (caller bugs, not user
// errors: the Python layer validates user input first).
inline const char* geometry_error(const Geometry& g) {
  if (g.batch < 1 || g.channels < 1 || g.height < 1 || g.width < 1 || g.out_h < 1 || g.out_w < 1)
    return "sizes must be >= 1";
  if (g.kernel_h < 1 || g.kernel_w < 1 || g.stride_h < 1 || g.stride_w < 1 || g.dilation_h < 1 ||
      g.dilation_w < 1 || g.pad_h < 0 || g.pad_w < 0)
    return "kernel, stride, dilation must be >= 1 and padding >= 0";
  if (g.deformable_groups < 1 || g.channels % g.deformable_groups != 0)
    return "channels must be a multiple of deformable_groups";
  if (g.x_stride_n < 0 || g.x_stride_c < 0 || g.x_stride_pixel < 1 || g.col_stride_row < 0 ||
      g.col_stride_n < 0)
    return "strides must be non-negative (pixel stride >= 1)";
  return "";
}

// Channels one sampling thread (im2col, col2im) handles. One thread per sample point, looping over
// all channels of its deformable group, reuses the point's bilinear plan the most; but with few
// points (small images, large groups) that leaves a GPU mostly idle, so the group's channels are
// then split into chunks (one plan per chunk) until about kTargetThreads threads run.
constexpr int64_t kTargetThreads = int64_t(1) << 18;

inline int64_t channels_per_thread(const Geometry& g) {
  const int64_t cg = g.group_channels();
  const int64_t pts = g.points() > 0 ? g.points() : 1;
  int64_t split = kTargetThreads / pts;
  split = split < 1 ? 1 : (split > cg ? cg : split);
  return (cg + split - 1) / split;
}

// Channel chunks per group and threads of a sampling launch with `cpt` channels per thread.
inline int64_t channel_chunks(const Geometry& g, int64_t cpt) { return (g.group_channels() + cpt - 1) / cpt; }
inline int64_t sample_threads(const Geometry& g, int64_t cpt) { return g.points() * channel_chunks(g, cpt); }

// Index arithmetic margin: the kernels compute blockIdx.x * blockDim.x + threadIdx.x in the index
// type, which may exceed the element count by up to one block.
constexpr int64_t kIndexMargin = 1024;
constexpr int64_t kInt32IndexLimit = std::numeric_limits<int32_t>::max() - kIndexMargin;

// The largest element offset (+1) any kernel forms for this geometry: tensor spans, thread counts,
// the deterministic backward's entry count and key range.
inline int64_t largest_index(const Geometry& g) {
  const int64_t hw = g.height * g.width;
  const int64_t x_span = (g.batch - 1) * g.x_stride_n + (g.channels - 1) * g.x_stride_c +
                         (hw - 1) * g.x_stride_pixel + 1;
  const int64_t col_span = (g.channels * g.taps() - 1) * g.col_stride_row +
                           (g.batch - 1) * g.col_stride_n + g.out_pixels();
  const int64_t offset_numel = 2 * g.points();
  const int64_t grad_x_threads = g.batch * g.channels * hw;
  const int64_t key_range = g.batch * g.deformable_groups * hw + 1;
  int64_t m = x_span;
  // Sampling threads with the chosen split, and col2im's 3 partial sums per thread when split.
  const int64_t partials = 3 * sample_threads(g, channels_per_thread(g));
  for (int64_t v : {col_span, offset_numel, grad_x_threads, g.entries(), key_range, partials})
    m = v > m ? v : m;
  return m;
}

// True when 32-bit index arithmetic could overflow, so the int64_t instantiation must be used.
// The int32_t one is faster (fewer registers, cheaper division), so it is used whenever it is safe.
inline bool needs_int64_index(const Geometry& g) { return largest_index(g) > kInt32IndexLimit; }

}  // namespace mx_dcn_cuda
