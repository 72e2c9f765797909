// col2im: one thread per sample point (and chunk of its group's channels when the points alone cannot
// fill the GPU) computes the point's offset and mask gradients without atomics (chunks' partial sums
// are added by a second kernel in chunk order) and, on the fast path, adds its grad-x contributions
// with atomicAdd into an accumulation-type buffer (float for float16/bfloat16: no 16-bit atomics,
// no 16-bit rounding per addition).
#include "launch.cuh"

namespace mx_dcn_cuda {
namespace {

struct AtomicAdd {
  template <typename acc_t>
  __device__ __forceinline__ void operator()(acc_t* address, acc_t value) const { atomicAdd(address, value); }
};

template <typename T, typename index_t>
__global__ void __launch_bounds__(kThreads)
col2im_coord_kernel(Geometry geo, index_t cpt, const T* __restrict__ x, const T* __restrict__ offset,
                    const T* __restrict__ mask, const T* __restrict__ grad_columns, CoordOutputs<T> out,
                    typename Convert<T>::acc_t* __restrict__ grad_x_acc, index_t items) {
  const index_t item = thread_index<index_t>();
  if (item < items)
    col2im_coord_item<T, index_t>(geo, cpt, x, offset, mask, grad_columns, out, grad_x_acc, AtomicAdd{}, item);
}

template <typename T, typename index_t>
__global__ void __launch_bounds__(kThreads)
col2im_coord_reduce_kernel(Geometry geo, index_t chunks, const T* __restrict__ mask, CoordOutputs<T> out,
                           index_t points) {
  const index_t i = thread_index<index_t>();
  if (i < points) col2im_coord_reduce<T, index_t>(geo, chunks, mask, out, i);
}

}  // namespace

cudaError_t col2im_coord(DType dtype, const Geometry& geo, const void* x, const void* offset,
                         const void* mask, const void* grad_columns, void* grad_offset, void* grad_mask,
                         void* grad_x_acc, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const int64_t cpt = channels_per_thread(geo);
  const int64_t chunks = channel_chunks(geo, cpt);
  const int64_t items = sample_threads(geo, cpt);
  if (grid_too_large(items)) return cudaErrorInvalidConfiguration;
  if (mask == nullptr && grad_mask != nullptr) return cudaErrorInvalidValue;
  const bool partials = chunks > 1 && (grad_offset != nullptr || grad_mask != nullptr);
  if (partials && (workspace == nullptr || workspace_bytes < col2im_coord_workspace_bytes(dtype, geo) ||
                   reinterpret_cast<uintptr_t>(workspace) % 8 != 0))
    return cudaErrorInvalidValue;
  return dispatch(dtype, geo, [&](auto t, auto idx) -> cudaError_t {
    using T = decltype(t);
    using index_t = decltype(idx);
    using acc_t = typename Convert<T>::acc_t;
    CoordOutputs<T> out{static_cast<T*>(grad_offset), static_cast<T*>(grad_mask),
                        partials ? static_cast<acc_t*>(workspace) : nullptr};
    col2im_coord_kernel<T, index_t><<<grid_for(items), kThreads, 0, stream>>>(
        geo, static_cast<index_t>(cpt), static_cast<const T*>(x), static_cast<const T*>(offset),
        static_cast<const T*>(mask), static_cast<const T*>(grad_columns), out, static_cast<acc_t*>(grad_x_acc),
        static_cast<index_t>(items));
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess || !partials) return err;
    col2im_coord_reduce_kernel<T, index_t><<<grid_for(geo.points()), kThreads, 0, stream>>>(
        geo, static_cast<index_t>(chunks), static_cast<const T*>(mask), out, static_cast<index_t>(geo.points()));
    return cudaGetLastError();
  });
}

}  // namespace mx_dcn_cuda
