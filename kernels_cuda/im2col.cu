// im2col: one thread per sample point (image, deformable group, tap, output pixel); the bilinear plan
// is computed once and applied to every channel of the group (point_ops.h).
#include "launch.cuh"

namespace mx_dcn_cuda {
namespace {

template <typename T, typename index_t>
__global__ void __launch_bounds__(kThreads)
im2col_kernel(Geometry geo, const T* __restrict__ x, const T* __restrict__ offset, const T* __restrict__ mask,
              T* __restrict__ columns, index_t points) {
  const index_t i = thread_index<index_t>();
  if (i < points) im2col_point<T, index_t>(geo, x, offset, mask, columns, i);
}

}  // namespace

cudaError_t im2col(DType dtype, const Geometry& geo, const void* x, const void* offset, const void* mask,
                   void* columns, cudaStream_t stream) {
  if (grid_too_large(geo.points())) return cudaErrorInvalidConfiguration;
  return dispatch(dtype, geo, [&](auto t, auto idx) {
    using T = decltype(t);
    using index_t = decltype(idx);
    im2col_kernel<T, index_t><<<grid_for(geo.points()), kThreads, 0, stream>>>(
        geo, static_cast<const T*>(x), static_cast<const T*>(offset), static_cast<const T*>(mask),
        static_cast<T*>(columns), static_cast<index_t>(geo.points()));
    return cudaGetLastError();
  });
}

}  // namespace mx_dcn_cuda
