// Framework-free launch API of the CUDA sampling kernels of mx_dcn: plain pointers, a Geometry
// (geometry.h) and a stream. Nothing here needs torch; mx_dcn/csrc/cuda is the torch glue.
//
// Types: float32, float64, float16, bfloat16 storage; accumulation in float (double for float64).
// Index width: every launcher picks the int32 or the int64 instantiation with needs_int64_index().
// Every launcher only enqueues work on `stream` and returns the launch status; none synchronises.
#pragma once

#include <cstddef>
#include <cuda_runtime_api.h>

#include "mx_dcn_cuda/geometry.h"

namespace mx_dcn_cuda {

enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };

// Bytes of one element of the accumulation type of `dtype` (grad x buffers, coefficients).
inline size_t acc_size(DType dtype) { return dtype == DType::kFloat64 ? 8 : 4; }

// columns = im2col(x, offset, mask): see geometry.h for layouts. mask may be null (DCNv1).
cudaError_t im2col(DType dtype, const Geometry& geo, const void* x, const void* offset, const void* mask,
                   void* columns, cudaStream_t stream);

// Gradients of offset and mask from the gradient of the columns, without atomics (deterministic).
// grad_offset / grad_mask may be null (not wanted; grad_mask must be null when mask is). When the
// sample points are too few to fill the GPU, each point's channels are split over several threads
// whose partial sums are then added in a fixed order; that needs col2im_coord_workspace_bytes() of
// workspace (8-byte aligned) whenever grad_offset or grad_mask is wanted.
// When grad_x_acc is not null, the fast path also adds the grad-x contributions into it with
// atomicAdd (non-deterministic summation order): grad_x_acc has the accumulation type (float for
// the 16-bit types), is laid out like x, and must be zeroed by the caller.
cudaError_t col2im_coord(DType dtype, const Geometry& geo, const void* x, const void* offset,
                         const void* mask, const void* grad_columns, void* grad_offset, void* grad_mask,
                         void* grad_x_acc, void* workspace, size_t workspace_bytes, cudaStream_t stream);

inline size_t col2im_coord_workspace_bytes(DType dtype, const Geometry& geo) {
  const int64_t cpt = channels_per_thread(geo);
  if (channel_chunks(geo, cpt) == 1) return 0;
  return static_cast<size_t>(3 * sample_threads(geo, cpt)) * acc_size(dtype);
}

// Deterministic grad x: no float atomics, bitwise reproducible run to run. It writes every element
// of grad_x_acc (accumulation type, laid out like x; no zeroing needed). Slower than the atomic path
// (a radix sort of 4 entries per sample point, then a gather) and it needs a workspace of
// col2im_deterministic_workspace_bytes() bytes, 256-byte aligned. geo.entries() must be < 2^31
// (split the batch into chunks otherwise).
cudaError_t col2im_deterministic_workspace_bytes(DType dtype, const Geometry& geo, size_t* bytes);
cudaError_t col2im_deterministic(DType dtype, const Geometry& geo, const void* offset, const void* mask,
                                 const void* grad_columns, void* grad_x_acc, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream);

// Largest entry count the deterministic path accepts in one call.
constexpr int64_t kMaxDeterministicEntries = (int64_t(1) << 31) - 1;

}  // namespace mx_dcn_cuda
