// col2im, fast path: one thread per sample point writes its offset and mask gradients (owned, no
// atomics) and, when asked, adds its grad-x contributions with atomicAdd into an accumulation-type
// buffer (float for float16/bfloat16, so no 16-bit atomics and no 16-bit rounding per addition).
#include "launch.cuh"

namespace mx_dcn_cuda {
namespace {

struct AtomicAdd {
  template <typename acc_t>
  __device__ __forceinline__ void operator()(acc_t* address, acc_t value) const { atomicAdd(address, value); }
};

template <typename T, typename index_t>
__global__ void __launch_bounds__(kThreads)
col2im_coord_kernel(Geometry geo, const T* __restrict__ x, const T* __restrict__ offset,
                    const T* __restrict__ mask, const T* __restrict__ grad_columns, T* __restrict__ grad_offset,
                    T* __restrict__ grad_mask, typename Convert<T>::acc_t* __restrict__ grad_x_acc,
                    index_t points) {
  const index_t i = thread_index<index_t>();
  if (i < points)
    col2im_coord_point<T, index_t>(geo, x, offset, mask, grad_columns, grad_offset, grad_mask, grad_x_acc,
                                   AtomicAdd{}, i);
}

}  // namespace

cudaError_t col2im_coord(DType dtype, const Geometry& geo, const void* x, const void* offset,
                         const void* mask, const void* grad_columns, void* grad_offset, void* grad_mask,
                         void* grad_x_acc, cudaStream_t stream) {
  if (grid_too_large(geo.points())) return cudaErrorInvalidConfiguration;
  if (mask == nullptr && grad_mask != nullptr) return cudaErrorInvalidValue;
  return dispatch(dtype, geo, [&](auto t, auto idx) {
    using T = decltype(t);
    using index_t = decltype(idx);
    using acc_t = typename Convert<T>::acc_t;
    col2im_coord_kernel<T, index_t><<<grid_for(geo.points()), kThreads, 0, stream>>>(
        geo, static_cast<const T*>(x), static_cast<const T*>(offset), static_cast<const T*>(mask),
        static_cast<const T*>(grad_columns), static_cast<T*>(grad_offset), static_cast<T*>(grad_mask),
        static_cast<acc_t*>(grad_x_acc), static_cast<index_t>(geo.points()));
    return cudaGetLastError();
  });
}

}  // namespace mx_dcn_cuda
