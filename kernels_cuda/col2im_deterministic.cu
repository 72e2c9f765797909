// col2im, deterministic path for grad x (no float atomics). Three steps on one stream:
//   1. det_entries_kernel: per sample point, its 4 (key = grad-x pixel, entry id, coefficient).
//   2. a stable radix sort of (key, entry id) by key (CUB, shipped with the CUDA toolkit); only the
//      bits the largest key needs are sorted.
//   3. det_gather_kernel: one thread per grad-x element sums its entries in increasing entry id.
// The summation order depends only on the inputs, so results are bitwise reproducible. It is slower
// than the atomic path (extra passes over 4 entries per point, a sort, random column reads).
// CUB in a namespace of our own, so its kernels cannot collide with another library's copy (torch
// ships one) when both are loaded into one process.
#define CUB_WRAPPED_NAMESPACE mx_dcn_cub
#include <cub/device/device_radix_sort.cuh>

#include "launch.cuh"

namespace mx_dcn_cuda {
namespace {

template <typename T, typename index_t>
__global__ void __launch_bounds__(kThreads)
det_entries_kernel(Geometry geo, const T* __restrict__ offset, const T* __restrict__ mask, uint64_t* keys,
                   uint32_t* entry_ids, typename Convert<T>::acc_t* coeff, index_t points) {
  const index_t i = thread_index<index_t>();
  if (i < points) det_entries_point<T, index_t>(geo, offset, mask, keys, entry_ids, coeff, i);
}

template <typename T, typename index_t>
__global__ void __launch_bounds__(kThreads)
det_gather_kernel(Geometry geo, const T* __restrict__ grad_columns, const uint64_t* __restrict__ sorted_keys,
                  const uint32_t* __restrict__ sorted_ids, const typename Convert<T>::acc_t* __restrict__ coeff,
                  typename Convert<T>::acc_t* __restrict__ grad_x_acc, index_t elements) {
  const index_t j = thread_index<index_t>();
  if (j < elements) det_gather_element<T, index_t>(geo, grad_columns, sorted_keys, sorted_ids, coeff, grad_x_acc, j);
}

constexpr size_t kAlign = 256;
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Workspace carve-up: keys in/out, ids in/out, coefficients, then the sort's temporary storage.
struct Layout {
  size_t keys_in, keys_out, ids_in, ids_out, coeff, temp, total, temp_bytes;
};

cudaError_t layout_for(DType dtype, const Geometry& geo, Layout* out) {
  const int64_t entries = geo.entries();
  if (entries > kMaxDeterministicEntries) return cudaErrorInvalidValue;
  size_t temp_bytes = 0;
  cudaError_t err = CUB_NS_QUALIFIER::DeviceRadixSort::SortPairs(
      nullptr, temp_bytes, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr),
      static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr), entries, 0, entry_key_bits(geo));
  if (err != cudaSuccess) return err;
  const size_t e = static_cast<size_t>(entries);
  Layout l;
  l.keys_in = 0;
  l.keys_out = l.keys_in + aligned(e * sizeof(uint64_t));
  l.ids_in = l.keys_out + aligned(e * sizeof(uint64_t));
  l.ids_out = l.ids_in + aligned(e * sizeof(uint32_t));
  l.coeff = l.ids_out + aligned(e * sizeof(uint32_t));
  l.temp = l.coeff + aligned(e * acc_size(dtype));
  l.temp_bytes = temp_bytes;
  l.total = l.temp + aligned(temp_bytes);
  *out = l;
  return cudaSuccess;
}

}  // namespace

cudaError_t col2im_deterministic_workspace_bytes(DType dtype, const Geometry& geo, size_t* bytes) {
  if (std::strlen(geometry_error(geo)) != 0) return cudaErrorInvalidValue;
  Layout l;
  const cudaError_t err = layout_for(dtype, geo, &l);
  if (err == cudaSuccess) *bytes = l.total;
  return err;
}

cudaError_t col2im_deterministic(DType dtype, const Geometry& geo, const void* offset, const void* mask,
                                 const void* grad_columns, void* grad_x_acc, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream) {
  const int64_t elements = geo.batch * geo.channels * geo.height * geo.width;
  if (grid_too_large(geo.points()) || grid_too_large(elements)) return cudaErrorInvalidConfiguration;
  if (std::strlen(geometry_error(geo)) != 0) return cudaErrorInvalidValue;
  Layout l;
  cudaError_t err = layout_for(dtype, geo, &l);
  if (err != cudaSuccess) return err;
  if (workspace_bytes < l.total || reinterpret_cast<uintptr_t>(workspace) % kAlign != 0) return cudaErrorInvalidValue;
  char* ws = static_cast<char*>(workspace);
  uint64_t* keys_in = reinterpret_cast<uint64_t*>(ws + l.keys_in);
  uint64_t* keys_out = reinterpret_cast<uint64_t*>(ws + l.keys_out);
  uint32_t* ids_in = reinterpret_cast<uint32_t*>(ws + l.ids_in);
  uint32_t* ids_out = reinterpret_cast<uint32_t*>(ws + l.ids_out);

  return dispatch(dtype, geo, [&](auto t, auto idx) -> cudaError_t {
    using T = decltype(t);
    using index_t = decltype(idx);
    using acc_t = typename Convert<T>::acc_t;
    acc_t* coeff = reinterpret_cast<acc_t*>(ws + l.coeff);
    det_entries_kernel<T, index_t><<<grid_for(geo.points()), kThreads, 0, stream>>>(
        geo, static_cast<const T*>(offset), static_cast<const T*>(mask), keys_in, ids_in, coeff,
        static_cast<index_t>(geo.points()));
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    size_t temp_bytes = l.temp_bytes;
    e = CUB_NS_QUALIFIER::DeviceRadixSort::SortPairs(ws + l.temp, temp_bytes, keys_in, keys_out, ids_in, ids_out,
                                        geo.entries(), 0, entry_key_bits(geo), stream);
    if (e != cudaSuccess) return e;
    det_gather_kernel<T, index_t><<<grid_for(elements), kThreads, 0, stream>>>(
        geo, static_cast<const T*>(grad_columns), keys_out, ids_out, coeff, static_cast<acc_t*>(grad_x_acc),
        static_cast<index_t>(elements));
    return cudaGetLastError();
  });
}

}  // namespace mx_dcn_cuda
