// im2col: one thread per sample point (image, deformable group, tap, output pixel) and chunk of its
// group's channels; the bilinear plan is computed once per thread and applied to each channel
// (point_ops.h). The chunk is the whole group unless the points alone cannot fill the GPU.
#include "launch.cuh"

namespace mx_dcn_cuda {
namespace {

template <typename T, typename index_t>
__global__ void __launch_bounds__(kThreads)
im2col_kernel(Geometry geo, index_t cpt, const T* __restrict__ x, const T* __restrict__ offset,
              const T* __restrict__ mask, T* __restrict__ columns, index_t items) {
  const index_t item = thread_index<index_t>();
  if (item < items) im2col_item<T, index_t>(geo, cpt, x, offset, mask, columns, item);
}

}  // namespace

cudaError_t im2col(DType dtype, const Geometry& geo, const void* x, const void* offset, const void* mask,
                   void* columns, cudaStream_t stream) {
  const int64_t cpt = channels_per_thread(geo);
  const int64_t items = sample_threads(geo, cpt);
  if (grid_too_large(items)) return cudaErrorInvalidConfiguration;
  return dispatch(dtype, geo, [&](auto t, auto idx) {
    using T = decltype(t);
    using index_t = decltype(idx);
    im2col_kernel<T, index_t><<<grid_for(items), kThreads, 0, stream>>>(
        geo, static_cast<index_t>(cpt), static_cast<const T*>(x), static_cast<const T*>(offset),
        static_cast<const T*>(mask), static_cast<T*>(columns), static_cast<index_t>(items));
    return cudaGetLastError();
  });
}

}  // namespace mx_dcn_cuda
