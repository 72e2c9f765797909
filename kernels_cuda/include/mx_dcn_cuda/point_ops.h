// The per-thread work of the CUDA sampling kernels, as __host__ __device__ functions: the kernels in
// kernels_cuda/*.cu are thin launches of these, and the same functions are compiled by the host
// compiler and run against the float64 oracle in tests (kernels_cuda/tests/host_emulation.cpp), so
// the indexing and the gradient formulas of the CUDA path are tested without a GPU.
//
// All sampling arithmetic (bounds rule, corners, weights, derivatives) comes from
// common/sampling.h, shared with the CPU kernel.
#pragma once

#include <cstdint>

#include "common/sampling.h"
#include "mx_dcn_cuda/geometry.h"

namespace mx_dcn_cuda {

// Loads/stores between the storage type T and the accumulation type. float and double convert with
// static_cast; the .cu files specialise this for __half and __nv_bfloat16 with the explicit
// intrinsics (torch builds with __CUDA_NO_HALF_CONVERSIONS__, so implicit conversions do not exist).
template <typename T>
struct Convert {
  using acc_t = T;
  static MXDCN_HD acc_t load(T v) { return v; }
  static MXDCN_HD T store(acc_t v) { return v; }
};

// A sample point's coordinates within a launch: i = ((n*dg + g)*K + k)*P + p, p = ho*out_w + wo.
// Consecutive threads take consecutive output pixels, so offset/mask reads and column writes
// coalesce.
template <typename index_t>
struct PointIndex {
  index_t n, group, tap, pixel, plane;  // plane = i / P = (n*dg + g)*K + k
};

template <typename index_t>
MXDCN_HD PointIndex<index_t> decompose_point(const Geometry& geo, index_t i) {
  const index_t P = static_cast<index_t>(geo.out_pixels());
  const index_t K = static_cast<index_t>(geo.taps());
  const index_t dg = static_cast<index_t>(geo.deformable_groups);
  PointIndex<index_t> pt;
  pt.pixel = i % P;
  pt.plane = i / P;
  pt.tap = pt.plane % K;
  const index_t ng = pt.plane / K;
  pt.group = ng % dg;
  pt.n = ng / dg;
  return pt;
}

// Where point i samples: the bilinear plan of its (y, x), from the shared header.
template <typename T, typename index_t>
MXDCN_HD mx_dcn::BilinearPlan<typename Convert<T>::acc_t> plan_point(const Geometry& geo, const T* offset,
                                                                     const PointIndex<index_t>& pt) {
  using acc_t = typename Convert<T>::acc_t;
  const index_t P = static_cast<index_t>(geo.out_pixels());
  const index_t ho = pt.pixel / static_cast<index_t>(geo.out_w);
  const index_t wo = pt.pixel % static_cast<index_t>(geo.out_w);
  const index_t ki = pt.tap / static_cast<index_t>(geo.kernel_w);
  const index_t kj = pt.tap % static_cast<index_t>(geo.kernel_w);
  const T* off = offset + pt.plane * 2 * P + pt.pixel;
  const acc_t y = static_cast<acc_t>(mx_dcn::base_coord(ho, ki, geo.stride_h, geo.pad_h, geo.dilation_h)) +
                  Convert<T>::load(off[0]);
  const acc_t x = static_cast<acc_t>(mx_dcn::base_coord(wo, kj, geo.stride_w, geo.pad_w, geo.dilation_w)) +
                  Convert<T>::load(off[P]);
  return mx_dcn::make_bilinear_plan<acc_t>(y, x, geo.height, geo.width);
}

// Pointer offsets of the four corners of a plan within one channel plane of x (0 when invalid).
template <typename acc_t, typename index_t>
MXDCN_HD void corner_offsets(const Geometry& geo, const mx_dcn::BilinearPlan<acc_t>& plan, index_t out[4]) {
  for (int q = 0; q < 4; ++q)
    out[q] = static_cast<index_t>(plan.index[q]) * static_cast<index_t>(geo.x_stride_pixel);
}

// Offset of column element (c, k, n, p).
template <typename index_t>
MXDCN_HD index_t column_offset(const Geometry& geo, index_t c, const PointIndex<index_t>& pt) {
  const index_t K = static_cast<index_t>(geo.taps());
  return (c * K + pt.tap) * static_cast<index_t>(geo.col_stride_row) +
         pt.n * static_cast<index_t>(geo.col_stride_n) + pt.pixel;
}

// im2col for point i and the channels [c_begin, c_end) of its deformable group:
// columns(c, k, n, p) = mask * bilinear(x[n, c], y, x). The plan is computed once and reused across
// the channels.
template <typename T, typename index_t>
MXDCN_HD void im2col_point(const Geometry& geo, const T* x, const T* offset, const T* mask, T* columns,
                           index_t i, index_t c_begin, index_t c_end) {
  using acc_t = typename Convert<T>::acc_t;
  const PointIndex<index_t> pt = decompose_point(geo, i);
  const auto plan = plan_point(geo, offset, pt);
  const acc_t m = mask ? Convert<T>::load(mask[i]) : acc_t(1);
  const index_t c0 = pt.group * static_cast<index_t>(geo.group_channels()) + c_begin;
  const index_t count = c_end - c_begin;
  const index_t row = static_cast<index_t>(geo.taps() * geo.col_stride_row);  // c -> c+1
  const index_t sc = static_cast<index_t>(geo.x_stride_c);
  T* col = columns + column_offset(geo, c0, pt);
  if (!plan.inside) {
    for (index_t c = 0; c < count; ++c) col[c * row] = Convert<T>::store(acc_t(0));
    return;
  }
  index_t corner[4];
  corner_offsets(geo, plan, corner);
  const T* xc = x + pt.n * static_cast<index_t>(geo.x_stride_n) + c0 * sc;
  for (index_t c = 0; c < count; ++c, xc += sc) {
    acc_t v = acc_t(0);
    for (int q = 0; q < 4; ++q)
      if (plan.valid[q]) v += plan.w[q] * Convert<T>::load(xc[corner[q]]);
    col[c * row] = Convert<T>::store(v * m);
  }
}

// im2col thread `item` of a launch with `cpt` channels per thread (channels_per_thread):
// item = chunk * points + i, so consecutive threads still take consecutive output pixels.
template <typename T, typename index_t>
MXDCN_HD void im2col_item(const Geometry& geo, index_t cpt, const T* x, const T* offset, const T* mask,
                          T* columns, index_t item) {
  const index_t points = static_cast<index_t>(geo.points());
  const index_t cg = static_cast<index_t>(geo.group_channels());
  const index_t begin = (item / points) * cpt;
  const index_t end = begin + cpt < cg ? begin + cpt : cg;
  im2col_point<T, index_t>(geo, x, offset, mask, columns, item % points, begin, end);
}

// Where col2im's per-point results go. With one channel chunk per group a thread owns its point's
// offset and mask gradients and writes them (`partial` null). With several chunks each thread
// writes its 3 partial sums (d/dy, d/dx, d/dmask) to partial[3*item..]; col2im_coord_reduce then
// adds the chunks of a point in chunk order. Either way no atomics: deterministic.
template <typename T>
struct CoordOutputs {
  T* grad_offset;  // (batch, dg*K*2, Ho, Wo) or null: not wanted
  T* grad_mask;    // (batch, dg*K, Ho, Wo) or null
  typename Convert<T>::acc_t* partial;  // (chunks, points, 3) or null
};

// Point i's offset gradients (d/dy, d/dx times the mask) and mask gradient, summed over its channels.
template <typename T, typename index_t, typename acc_t>
MXDCN_HD void write_coord_grads(const Geometry& geo, const PointIndex<index_t>& pt, index_t i, acc_t m, acc_t g_y,
                                acc_t g_x, acc_t g_mask, CoordOutputs<T> out) {
  const index_t P = static_cast<index_t>(geo.out_pixels());
  if (out.grad_offset != nullptr) {
    T* go = out.grad_offset + pt.plane * 2 * P + pt.pixel;
    go[0] = Convert<T>::store(g_y * m);
    go[P] = Convert<T>::store(g_x * m);
  }
  if (out.grad_mask != nullptr) out.grad_mask[i] = Convert<T>::store(g_mask);
}

// The backward of im2col for col2im thread `item` = chunk * points + i (channels [chunk*cpt,
// min((chunk+1)*cpt, Cg)) of point i's group): the gradients of the point's offset and mask (see
// CoordOutputs); and when grad_x_acc is not null it also adds its contributions to grad x through
// `add` (atomicAdd on the GPU: the fast, non-deterministic path). grad_x_acc has the accumulation
// type and is laid out like x.
template <typename T, typename index_t, typename AddOp>
MXDCN_HD void col2im_coord_item(const Geometry& geo, index_t cpt, const T* x, const T* offset, const T* mask,
                                const T* grad_columns, CoordOutputs<T> out, typename Convert<T>::acc_t* grad_x_acc,
                                AddOp add, index_t item) {
  using acc_t = typename Convert<T>::acc_t;
  const index_t points = static_cast<index_t>(geo.points());
  const index_t cg = static_cast<index_t>(geo.group_channels());
  const index_t i = item % points;
  const index_t begin = (item / points) * cpt;
  const index_t end = begin + cpt < cg ? begin + cpt : cg;
  const PointIndex<index_t> pt = decompose_point(geo, i);
  const auto plan = plan_point(geo, offset, pt);
  const acc_t m = mask ? Convert<T>::load(mask[i]) : acc_t(1);
  acc_t g_mask = acc_t(0), g_y = acc_t(0), g_x = acc_t(0);
  const bool coords = out.grad_offset != nullptr || out.grad_mask != nullptr;  // else x is not read
  if (plan.inside) {
    const index_t c0 = pt.group * cg + begin;
    const index_t row = static_cast<index_t>(geo.taps() * geo.col_stride_row);
    const index_t sc = static_cast<index_t>(geo.x_stride_c);
    const index_t xn = pt.n * static_cast<index_t>(geo.x_stride_n) + c0 * sc;
    index_t corner[4];
    corner_offsets(geo, plan, corner);
    const T* gcol = grad_columns + column_offset(geo, c0, pt);
    for (index_t c = 0; c < end - begin; ++c) {
      const acc_t gc = Convert<T>::load(gcol[c * row]);
      if (coords) {
        const T* xc = x + xn + c * sc;
        acc_t v = acc_t(0), dvdy = acc_t(0), dvdx = acc_t(0);
        for (int q = 0; q < 4; ++q) {
          if (!plan.valid[q]) continue;
          const acc_t xv = Convert<T>::load(xc[corner[q]]);
          v += plan.w[q] * xv;
          dvdy += plan.dwdy[q] * xv;
          dvdx += plan.dwdx[q] * xv;
        }
        g_mask += gc * v;
        g_y += gc * dvdy;
        g_x += gc * dvdx;
      }
      if (grad_x_acc != nullptr) {
        acc_t* gx = grad_x_acc + xn + c * sc;
        for (int q = 0; q < 4; ++q)
          if (plan.valid[q]) add(gx + corner[q], gc * m * plan.w[q]);
      }
    }
  }
  if (!coords) return;
  if (out.partial != nullptr) {
    acc_t* dst = out.partial + 3 * item;
    dst[0] = g_y;
    dst[1] = g_x;
    dst[2] = g_mask;
    return;
  }
  write_coord_grads(geo, pt, i, m, g_y, g_x, g_mask, out);
}

// Second pass when the channels were split into `chunks`: point i sums its partials in chunk order.
template <typename T, typename index_t>
MXDCN_HD void col2im_coord_reduce(const Geometry& geo, index_t chunks, const T* mask, CoordOutputs<T> out,
                                  index_t i) {
  using acc_t = typename Convert<T>::acc_t;
  const index_t points = static_cast<index_t>(geo.points());
  acc_t g_y = acc_t(0), g_x = acc_t(0), g_mask = acc_t(0);
  for (index_t chunk = 0; chunk < chunks; ++chunk) {
    const acc_t* src = out.partial + 3 * (chunk * points + i);
    g_y += src[0];
    g_x += src[1];
    g_mask += src[2];
  }
  const acc_t m = mask ? Convert<T>::load(mask[i]) : acc_t(1);
  const PointIndex<index_t> pt = decompose_point(geo, i);
  write_coord_grads(geo, pt, i, m, g_y, g_x, g_mask, out);
}

// ---- Deterministic backward of grad x (no float atomics), in two passes around a stable sort.
// Pass 1 (per point): entry e = 4*i + q names corner q of point i; its key is the grad-x pixel it
// feeds, ((n*dg + g)*H*W + pixel), or `entry_sentinel` when the corner is outside the image; its
// coefficient is mask * w[q] (the same for every channel of the group).
// A stable sort of (key, e) by key groups each pixel's entries in increasing e.
// Pass 2 (per grad-x element): binary-search its key and sum coefficient * grad column over its
// entries in that fixed order, then write the element once.

MXDCN_HD uint64_t entry_sentinel(const Geometry& geo) {
  return static_cast<uint64_t>(geo.batch * geo.deformable_groups * geo.height * geo.width);
}

// Number of key bits the sort has to look at (keys are <= the sentinel).
inline int entry_key_bits(const Geometry& geo) {
  int bits = 1;
  while (bits < 64 && (entry_sentinel(geo) >> bits) != 0) ++bits;
  return bits;
}

template <typename T, typename index_t>
MXDCN_HD void det_entries_point(const Geometry& geo, const T* offset, const T* mask, uint64_t* keys,
                                uint32_t* entry_ids, typename Convert<T>::acc_t* coeff, index_t i) {
  using acc_t = typename Convert<T>::acc_t;
  const PointIndex<index_t> pt = decompose_point(geo, i);
  const auto plan = plan_point(geo, offset, pt);
  const acc_t m = mask ? Convert<T>::load(mask[i]) : acc_t(1);
  const uint64_t base = static_cast<uint64_t>(pt.n * static_cast<index_t>(geo.deformable_groups) + pt.group) *
                        static_cast<uint64_t>(geo.height * geo.width);
  for (int q = 0; q < 4; ++q) {
    const index_t e = 4 * i + q;
    keys[e] = plan.valid[q] ? base + static_cast<uint64_t>(plan.index[q]) : entry_sentinel(geo);
    entry_ids[e] = static_cast<uint32_t>(e);
    coeff[e] = plan.valid[q] ? plan.w[q] * m : acc_t(0);
  }
}

// Grad-x element j, ordered (n, c, pixel) with the pixel fastest. Writes (not adds) grad_x_acc.
template <typename T, typename index_t>
MXDCN_HD void det_gather_element(const Geometry& geo, const T* grad_columns, const uint64_t* sorted_keys,
                                 const uint32_t* sorted_ids, const typename Convert<T>::acc_t* coeff,
                                 typename Convert<T>::acc_t* grad_x_acc, index_t j) {
  using acc_t = typename Convert<T>::acc_t;
  const index_t hw = static_cast<index_t>(geo.height * geo.width);
  const index_t C = static_cast<index_t>(geo.channels);
  const index_t pixel = j % hw;
  const index_t c = (j / hw) % C;
  const index_t n = j / hw / C;
  const index_t group = c / static_cast<index_t>(geo.group_channels());
  const uint64_t key = static_cast<uint64_t>(n * static_cast<index_t>(geo.deformable_groups) + group) *
                           static_cast<uint64_t>(hw) + static_cast<uint64_t>(pixel);
  // lower_bound of key among the sorted keys
  index_t lo = 0, hi = static_cast<index_t>(geo.entries());
  while (lo < hi) {
    const index_t mid = lo + (hi - lo) / 2;
    if (sorted_keys[mid] < key) lo = mid + 1; else hi = mid;
  }
  const index_t end = static_cast<index_t>(geo.entries());
  acc_t sum = acc_t(0);
  for (index_t s = lo; s < end && sorted_keys[s] == key; ++s) {
    const index_t e = static_cast<index_t>(sorted_ids[s]);
    const PointIndex<index_t> pt = decompose_point(geo, e / 4);
    sum += coeff[e] * Convert<T>::load(grad_columns[column_offset(geo, c, pt)]);
  }
  grad_x_acc[n * static_cast<index_t>(geo.x_stride_n) + c * static_cast<index_t>(geo.x_stride_c) +
             pixel * static_cast<index_t>(geo.x_stride_pixel)] = sum;
}

}  // namespace mx_dcn_cuda
