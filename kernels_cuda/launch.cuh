// Private to kernels_cuda/*.cu: 16-bit conversions, dtype/index-width dispatch, launch shapes.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "mx_dcn_cuda/kernels.h"
#include "mx_dcn_cuda/point_ops.h"

namespace mx_dcn_cuda {

// Explicit intrinsics: torch compiles with __CUDA_NO_HALF_CONVERSIONS__ /
// __CUDA_NO_BFLOAT16_CONVERSIONS__, and the 16-bit types accumulate in float.
template <>
struct Convert<__half> {
  using acc_t = float;
  static __host__ __device__ __forceinline__ float load(__half v) { return __half2float(v); }
  static __host__ __device__ __forceinline__ __half store(float v) { return __float2half_rn(v); }
};

template <>
struct Convert<__nv_bfloat16> {
  using acc_t = float;
  static __host__ __device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __host__ __device__ __forceinline__ __nv_bfloat16 store(float v) { return __float2bfloat16_rn(v); }
};

constexpr int kThreads = 256;

// One thread per item, no grid-stride loop: the index never exceeds items + one block, which
// needs_int64_index() leaves room for.
inline dim3 grid_for(int64_t items) { return dim3(static_cast<unsigned>((items + kThreads - 1) / kThreads)); }

inline bool grid_too_large(int64_t items) {
  return (items + kThreads - 1) / kThreads > int64_t(0x7fffffff);  // gridDim.x limit
}

template <typename index_t>
__device__ __forceinline__ index_t thread_index() {
  return static_cast<index_t>(blockIdx.x) * static_cast<index_t>(blockDim.x) + static_cast<index_t>(threadIdx.x);
}

// Calls f(T{}, index_t{}) with the storage type of `dtype` and the index width the geometry needs.
template <typename F>
cudaError_t dispatch(DType dtype, const Geometry& geo, F&& f) {
  if (std::strlen(geometry_error(geo)) != 0) return cudaErrorInvalidValue;
  const bool wide = needs_int64_index(geo);
  auto with_type = [&](auto zero) -> cudaError_t {
    using T = decltype(zero);
    return wide ? f(T{}, int64_t{}) : f(T{}, int32_t{});
  };
  switch (dtype) {
    case DType::kFloat32: return with_type(float{});
    case DType::kFloat64: return with_type(double{});
    case DType::kFloat16: return with_type(__half{});
    case DType::kBFloat16: return with_type(__nv_bfloat16{});
  }
  return cudaErrorInvalidValue;
}

}  // namespace mx_dcn_cuda
