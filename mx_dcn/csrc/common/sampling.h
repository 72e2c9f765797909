// The one source of truth for deformable-convolution sampling math, shared by the CPU kernel
// (mx_dcn/csrc/cpu) and the CUDA kernels (kernels_cuda). Framework-free: no torch, no CUDA runtime.
//
// Semantics (docs/design.md): a sample at (y, x) of an H x W plane is 0 when y <= -1, y >= H,
// x <= -1 or x >= W; otherwise it is the bilinear blend of its four corners, a corner outside the
// plane counting as 0. Outside that open box no gradient flows. At integer coordinates the
// derivative is taken on the side of floor(y) / floor(x), as mmcv, torchvision and Paddle do.
#pragma once

#include <cstdint>
#include <cmath>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define MXDCN_HD __host__ __device__ __forceinline__
#else
#define MXDCN_HD inline
#endif

namespace mx_dcn {

template <typename T>
MXDCN_HD T floor_of(T v) {
#if defined(__CUDA_ARCH__)
  return floor(v);
#else
  return std::floor(v);
#endif
}

// Output extent of a convolution along one axis; 0 when the padded input is shorter than the
// dilated kernel (C++ division truncates toward zero, so a negative span must not reach it: -1 / 2 + 1
// would give 1 where the definition, floor division, gives 0). Callers reject sizes < 1.
MXDCN_HD int64_t conv_out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                               int64_t dilation) {
  const int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

// Undeformed sampling position of output index `out_idx`, kernel tap `tap` along one axis.
MXDCN_HD int64_t base_coord(int64_t out_idx, int64_t tap, int64_t stride, int64_t pad,
                            int64_t dilation) {
  return out_idx * stride - pad + tap * dilation;
}

// Where a sample lands and how it blends: computed once per (image, group, tap, output pixel)
// and applied to every channel of the deformable group.
//
// Corner order: 0 = (y0, x0), 1 = (y0, x0+1), 2 = (y0+1, x0), 3 = (y0+1, x0+1).
// For corner k inside the plane, valid[k] is true and index[k] = row * W + col; for a corner
// outside, valid[k] is false, index[k] is 0 and all its weights are 0, so it must be skipped
// (never multiplied: 0 * inf would turn a padded zero into NaN, which a dense conv does not do).
//   value      = sum_k w[k]    * v[k]
//   d value/dy = sum_k dwdy[k] * v[k]
//   d value/dx = sum_k dwdx[k] * v[k]
template <typename acc_t>
struct BilinearPlan {
  bool inside;       // the sample lies in the open box (-1, H) x (-1, W)
  bool valid[4];
  int64_t index[4];
  acc_t w[4];
  acc_t dwdy[4];
  acc_t dwdx[4];
};

template <typename acc_t>
MXDCN_HD bool sample_inside(acc_t y, acc_t x, int64_t height, int64_t width) {
  // Written so that NaN coordinates fall outside (every comparison with NaN is false).
  return y > acc_t(-1) && y < acc_t(height) && x > acc_t(-1) && x < acc_t(width);
}

template <typename acc_t>
MXDCN_HD BilinearPlan<acc_t> make_bilinear_plan(acc_t y, acc_t x, int64_t height, int64_t width) {
  BilinearPlan<acc_t> p;
  p.inside = sample_inside(y, x, height, width);
  if (!p.inside) {
    for (int k = 0; k < 4; ++k) {
      p.valid[k] = false;
      p.index[k] = 0;
      p.w[k] = p.dwdy[k] = p.dwdx[k] = acc_t(0);
    }
    return p;
  }
  // Inside the box, -1 < y < H, so floor(y) fits an int64 and lies in [-1, H-1].
  const acc_t yf = floor_of(y);
  const acc_t xf = floor_of(x);
  const int64_t y0 = static_cast<int64_t>(yf);
  const int64_t x0 = static_cast<int64_t>(xf);
  const acc_t ly = y - yf, lx = x - xf;
  const acc_t hy = acc_t(1) - ly, hx = acc_t(1) - lx;

  const int64_t rows[4] = {y0, y0, y0 + 1, y0 + 1};
  const int64_t cols[4] = {x0, x0 + 1, x0, x0 + 1};
  const acc_t w[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
  const acc_t dwdy[4] = {-hx, -lx, hx, lx};
  const acc_t dwdx[4] = {-hy, hy, -ly, ly};
  for (int k = 0; k < 4; ++k) {
    const bool ok = rows[k] >= 0 && rows[k] < height && cols[k] >= 0 && cols[k] < width;
    p.valid[k] = ok;
    p.index[k] = ok ? rows[k] * width + cols[k] : 0;
    p.w[k] = ok ? w[k] : acc_t(0);
    p.dwdy[k] = ok ? dwdy[k] : acc_t(0);
    p.dwdx[k] = ok ? dwdx[k] : acc_t(0);
  }
  return p;
}

}  // namespace mx_dcn
