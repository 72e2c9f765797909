// The CUDA implementation of mx_dcn::deform_conv2d and mx_dcn::deform_conv2d_backward: torch glue
// around the framework-free kernels of kernels_cuda (mx_dcn_cuda/kernels.h).
//
// Batch chunks sized to the workspace budget, everything on the current stream:
//   forward   columns (C*K, nb*P) = im2col  ->  bmm with the weight per conv group (cuBLAS)  -> output
//   backward  grad columns = weight^T x grad_out (cuBLAS) -> col2im: grad offset / mask (owned per
//             sample point) and grad x, either by atomicAdd (fast) or by the deterministic
//             sort-and-gather path when torch.use_deterministic_algorithms(True) is in force or
//             MX_DCN_DETERMINISTIC=1; grad weight += grad_out x columns^T (cuBLAS).
// Half types sample and accumulate in float32 (grad x is accumulated in a float32 buffer).
// x may be NCHW or channels-last; the kernels read either layout in place.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <tuple>

#include "mx_dcn_cuda/kernels.h"
#include "op_checks.h"
#include "workspace_stats.h"

namespace mx_dcn {
namespace cuda {
namespace {

using mx_dcn_cuda::DType;
using mx_dcn_cuda::Geometry;

void check(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "mx_dcn CUDA kernel ", what, " failed: ", cudaGetErrorString(err));
}

DType dtype_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return DType::kFloat32;
    case at::kDouble: return DType::kFloat64;
    case at::kHalf: return DType::kFloat16;
    case at::kBFloat16: return DType::kBFloat16;
    default: TORCH_CHECK_TYPE(false, "input: expected float32, float64, float16 or bfloat16, got ", t);
  }
}

at::ScalarType acc_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// The deterministic backward: requested by torch's flag or by MX_DCN_DETERMINISTIC=1.
bool deterministic_backward() {
  if (at::globalContext().deterministicAlgorithms()) return true;
  const char* env = std::getenv("MX_DCN_DETERMINISTIC");
  return env != nullptr && (std::strcmp(env, "1") == 0 || std::strcmp(env, "true") == 0);
}

struct Args {
  Geometry g;  // batch filled per chunk
  int64_t batch, out_channels, groups;
};

// x as the kernels read it: its own strides when the planes are dense (NCHW or channels-last),
// otherwise a contiguous copy.
at::Tensor kernel_layout(const at::Tensor& input) {
  const int64_t w = input.size(3);
  const bool dense_rows = input.stride(3) >= 1 && input.stride(2) == w * input.stride(3);
  if (dense_rows && (input.is_contiguous() || input.is_contiguous(at::MemoryFormat::ChannelsLast))) return input;
  return input.contiguous();
}

Args check_args(const at::Tensor& input, const at::Tensor& offset, const std::optional<at::Tensor>& mask,
                const at::Tensor& weight, const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, int64_t dg) {
  const mx_dcn::OpShape s = mx_dcn::check_op_shape(input, weight, offset, stride, padding, dilation, groups, dg);
  const auto type = input.scalar_type();
  dtype_of(type);
  auto same = [&](const at::Tensor& t, const char* name) {
    TORCH_CHECK_TYPE(t.scalar_type() == type, name, ": expected dtype ", type, ", got ", t.scalar_type());
    TORCH_CHECK_VALUE(t.device() == input.device(), name, ": expected a tensor on ", input.device(), ", got ",
                      t.device());
  };
  TORCH_CHECK_VALUE(input.is_cuda(), "input: expected a CUDA tensor, got ", input.device());
  same(offset, "offset");
  same(weight, "weight");
  if (mask) same(*mask, "mask");
  if (bias) same(*bias, "bias");
  mx_dcn::check_sampling_shapes(s, dg, offset, mask, bias);

  Args a;
  Geometry& g = a.g;
  a.batch = s.batch;
  a.out_channels = s.out_channels;
  a.groups = groups;
  g.channels = s.channels;
  g.height = s.height;
  g.width = s.width;
  g.kernel_h = s.kernel_h;
  g.kernel_w = s.kernel_w;
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dilation_h = dilation[0];
  g.dilation_w = dilation[1];
  g.deformable_groups = dg;
  g.out_h = s.out_h;
  g.out_w = s.out_w;
  g.batch = 1;
  const char* bad = mx_dcn_cuda::geometry_error(g);
  TORCH_CHECK_VALUE(std::strlen(bad) == 0, "deform_conv2d: ", bad);
  return a;
}

// The geometry of images [n0, n0 + nb) with x laid out as `x` and the classic column matrix.
Geometry chunk_geometry(const Args& a, const at::Tensor& x, int64_t nb) {
  Geometry g = a.g;
  g.batch = nb;
  g.x_stride_n = x.stride(0);
  g.x_stride_c = x.stride(1);
  g.x_stride_pixel = x.stride(3);
  g.col_stride_n = g.out_pixels();
  g.col_stride_row = nb * g.out_pixels();
  return g;
}

// Images per chunk: as many as the workspace budget holds, at least one.
int64_t chunk_images(int64_t batch, int64_t bytes_per_image) {
  return std::max<int64_t>(1, std::min<int64_t>(batch, get_workspace_budget() / std::max<int64_t>(1, bytes_per_image)));
}

const void* ptr_or_null(const std::optional<at::Tensor>& t, int64_t n0, int64_t nb) {
  return t ? t->narrow(0, n0, nb).const_data_ptr() : nullptr;
}

at::Tensor deform_conv2d_cuda(const at::Tensor& input, const at::Tensor& offset_in,
                              const std::optional<at::Tensor>& mask_in, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                              at::IntArrayRef dilation, int64_t groups, int64_t deformable_groups) {
  const Args a = check_args(input, offset_in, mask_in, weight, bias, stride, padding, dilation, groups,
                            deformable_groups);
  const c10::cuda::CUDAGuard guard(input.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t N = a.batch, Cout = a.out_channels, G = a.groups, P = a.g.out_pixels();
  const int64_t CK = a.g.channels * a.g.taps(), Cog = Cout / G, CgK = CK / G;
  at::Tensor out = at::empty({N, Cout, a.g.out_h, a.g.out_w}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (N == 0) return out;

  const at::Tensor x = kernel_layout(input);
  const at::Tensor offset = offset_in.contiguous();
  const std::optional<at::Tensor> mask = mask_in ? std::optional<at::Tensor>(mask_in->contiguous()) : std::nullopt;
  const at::Tensor wmat = weight.contiguous().view({G, Cog, CgK});
  const int64_t elem = static_cast<int64_t>(input.element_size());
  const int64_t nb_max = chunk_images(N, (CK + Cout) * P * elem);
  at::Tensor col_store = at::empty({CK * nb_max * P}, input.options());
  record_workspace(2 * static_cast<int64_t>(col_store.nbytes()));

  for (int64_t n0 = 0; n0 < N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, N - n0);
    const Geometry g = chunk_geometry(a, x, nb);
    at::Tensor cols = col_store.narrow(0, 0, CK * nb * P).view({G, CgK, nb * P});
    check(mx_dcn_cuda::im2col(dtype_of(input.scalar_type()), g, x.narrow(0, n0, nb).const_data_ptr(),
                              offset.narrow(0, n0, nb).const_data_ptr(), ptr_or_null(mask, n0, nb),
                              cols.mutable_data_ptr(), stream),
          "im2col");
    const at::Tensor res = at::bmm(wmat, cols);  // (G, Cog, nb*P)
    out.narrow(0, n0, nb).view({nb, Cout, P}).copy_(res.view({Cout, nb, P}).transpose(0, 1));
  }
  if (bias) out.add_(bias->view({1, Cout, 1, 1}));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset_in,
    const std::optional<at::Tensor>& mask_in, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    int64_t deformable_groups, std::array<bool, 5> want) {
  const Args a = check_args(input, offset_in, mask_in, weight, bias, stride, padding, dilation, groups,
                            deformable_groups);
  TORCH_CHECK_TYPE(grad_output.scalar_type() == input.scalar_type(), "grad_output: expected dtype ",
                   input.scalar_type(), ", got ", grad_output.scalar_type());
  const c10::cuda::CUDAGuard guard(input.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t N = a.batch, Cout = a.out_channels, G = a.groups, P = a.g.out_pixels();
  const int64_t CK = a.g.channels * a.g.taps(), Cog = Cout / G, CgK = CK / G;
  TORCH_CHECK_VALUE(grad_output.sizes() == at::IntArrayRef({N, Cout, a.g.out_h, a.g.out_w}),
                    "grad_output: expected shape (", N, ", ", Cout, ", ", a.g.out_h, ", ", a.g.out_w, "), got ",
                    grad_output.sizes());
  const bool need_gx = want[0], need_goff = want[1], need_gmask = want[2] && mask_in.has_value();
  const bool need_gw = want[3], need_gb = want[4] && bias.has_value();
  const bool need_gcol = need_gx || need_goff || need_gmask;
  const bool deterministic = need_gx && deterministic_backward();
  const DType dtype = dtype_of(input.scalar_type());

  auto none = [&] { return at::empty({0}, input.options()); };
  const at::Tensor x = kernel_layout(input);
  const at::Tensor offset = offset_in.contiguous();
  const std::optional<at::Tensor> mask = mask_in ? std::optional<at::Tensor>(mask_in->contiguous()) : std::nullopt;
  at::Tensor grad_offset = need_goff ? at::empty_like(offset) : none();
  at::Tensor grad_mask = need_gmask ? at::empty_like(*mask) : none();
  // grad x accumulates in float32 for the 16-bit types, laid out like x (the kernels index both alike).
  at::Tensor gx_acc = need_gx ? at::empty_strided(x.sizes(), x.strides(), x.options().dtype(acc_type(x.scalar_type())))
                              : at::Tensor();
  if (need_gx && !deterministic) gx_acc.zero_();
  at::Tensor gw_acc = need_gw ? at::zeros({G, Cog, CgK}, weight.options().dtype(acc_type(weight.scalar_type())))
                              : at::Tensor();
  if (N == 0) {
    return {need_gx ? gx_acc.zero_().to(input.scalar_type()) : none(), grad_offset, grad_mask,
            need_gw ? at::zeros_like(weight) : none(), need_gb ? at::zeros_like(*bias) : none()};
  }

  const at::Tensor go = grad_output.contiguous();
  const at::Tensor wmat = weight.contiguous().view({G, Cog, CgK});
  const int64_t elem = static_cast<int64_t>(input.element_size());
  const Geometry one = chunk_geometry(a, x, 1);
  size_t det_one = 0;
  if (deterministic) {
    TORCH_CHECK(one.entries() <= mx_dcn_cuda::kMaxDeterministicEntries,
                "deterministic backward: one image has too many sample points (", one.points(),
                "); unset MX_DCN_DETERMINISTIC / torch.use_deterministic_algorithms to use the atomic path");
    check(mx_dcn_cuda::col2im_deterministic_workspace_bytes(dtype, one, &det_one), "col2im_deterministic_workspace_bytes");
  }
  const int64_t per_image = ((need_gw ? CK : 0) + (need_gcol ? CK : 0) + Cout) * P * elem +
                            static_cast<int64_t>(det_one);
  int64_t nb_max = chunk_images(N, per_image);
  if (deterministic) nb_max = std::min(nb_max, mx_dcn_cuda::kMaxDeterministicEntries / one.entries());
  at::Tensor col_store = need_gw ? at::empty({CK * nb_max * P}, input.options()) : at::Tensor();
  at::Tensor det_ws;
  if (deterministic) {
    size_t bytes = 0;
    check(mx_dcn_cuda::col2im_deterministic_workspace_bytes(dtype, chunk_geometry(a, x, nb_max), &bytes),
          "col2im_deterministic_workspace_bytes");
    det_ws = at::empty({static_cast<int64_t>(bytes)}, input.options().dtype(at::kByte));
  }
  // Partial sums of col2im when a point's channels are split over threads (few points only, at most
  // 3 * 2^18 sums); the split depends on the chunk size, so size it for the full and the last chunk.
  at::Tensor coord_ws;
  const int64_t nb_last = N - (N - 1) / nb_max * nb_max;
  const size_t coord_bytes = std::max(mx_dcn_cuda::col2im_coord_workspace_bytes(dtype, chunk_geometry(a, x, nb_max)),
                                      mx_dcn_cuda::col2im_coord_workspace_bytes(dtype, chunk_geometry(a, x, nb_last)));
  if ((need_goff || need_gmask) && coord_bytes > 0) {
    coord_ws = at::empty({static_cast<int64_t>(coord_bytes)}, input.options().dtype(at::kByte));
  }
  record_workspace(per_image * nb_max + static_cast<int64_t>(coord_bytes));

  for (int64_t n0 = 0; n0 < N; n0 += nb_max) {
    const int64_t nb = std::min(nb_max, N - n0);
    const Geometry g = chunk_geometry(a, x, nb);
    // grad_out of the chunk as (G, Cog, nb*P), matching the column matrix.
    const at::Tensor go_g = go.narrow(0, n0, nb).view({nb, G, Cog, P}).permute({1, 2, 0, 3}).reshape({G, Cog, nb * P});
    if (need_gw) {
      at::Tensor cols = col_store.narrow(0, 0, CK * nb * P).view({G, CgK, nb * P});
      check(mx_dcn_cuda::im2col(dtype, g, x.narrow(0, n0, nb).const_data_ptr(), offset.narrow(0, n0, nb).const_data_ptr(),
                                ptr_or_null(mask, n0, nb), cols.mutable_data_ptr(), stream),
            "im2col");
      gw_acc.add_(at::bmm(go_g, cols.transpose(1, 2)));
    }
    if (!need_gcol) continue;
    const at::Tensor gcols = at::bmm(wmat.transpose(1, 2), go_g);  // (G, CgK, nb*P) == (C*K, nb*P)
    void* gx_ptr = need_gx ? gx_acc.narrow(0, n0, nb).mutable_data_ptr() : nullptr;
    if (need_goff || need_gmask || (need_gx && !deterministic)) {
      check(mx_dcn_cuda::col2im_coord(dtype, g, x.narrow(0, n0, nb).const_data_ptr(),
                                      offset.narrow(0, n0, nb).const_data_ptr(), ptr_or_null(mask, n0, nb),
                                      gcols.const_data_ptr(),
                                      need_goff ? grad_offset.narrow(0, n0, nb).mutable_data_ptr() : nullptr,
                                      need_gmask ? grad_mask.narrow(0, n0, nb).mutable_data_ptr() : nullptr,
                                      deterministic ? nullptr : gx_ptr, coord_ws.defined() ? coord_ws.data_ptr() : nullptr,
                                      coord_ws.defined() ? static_cast<size_t>(coord_ws.nbytes()) : 0, stream),
            "col2im_coord");
    }
    if (need_gx && deterministic) {
      check(mx_dcn_cuda::col2im_deterministic(dtype, g, offset.narrow(0, n0, nb).const_data_ptr(),
                                              ptr_or_null(mask, n0, nb), gcols.const_data_ptr(), gx_ptr,
                                              det_ws.mutable_data_ptr(), static_cast<size_t>(det_ws.nbytes()), stream),
            "col2im_deterministic");
    }
  }

  // Contiguous like the fake kernel in mx_dcn/ops.py declares (and the CPU kernel returns).
  at::Tensor grad_input = need_gx ? gx_acc.to(input.scalar_type()).contiguous() : none();
  at::Tensor grad_weight = need_gw ? gw_acc.view(weight.sizes()).to(weight.scalar_type()) : none();
  at::Tensor grad_bias = need_gb ? go.sum({0, 2, 3}, false, acc_type(go.scalar_type())).to(bias->scalar_type()) : none();
  return {grad_input, grad_offset, grad_mask, grad_weight, grad_bias};
}

}  // namespace
}  // namespace cuda
}  // namespace mx_dcn

TORCH_LIBRARY_IMPL(mx_dcn, CUDA, m) {
  m.impl("deform_conv2d", &mx_dcn::cuda::deform_conv2d_cuda);
  m.impl("deform_conv2d_backward", &mx_dcn::cuda::deform_conv2d_backward_cuda);
}
