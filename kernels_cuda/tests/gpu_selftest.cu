// GPU self-test of the CUDA kernels, without torch: for each dtype and a few geometries it runs the
// launchers of mx_dcn_cuda/kernels.h on the device and compares with the same per-thread functions
// (point_ops.h) run on the host in the accumulation type; it also checks that the deterministic
// backward is bitwise reproducible and agrees with the atomic one. Needs a GPU (sm_80 or newer):
//
//   nvcc -std=c++17 -O2 -arch=native -I mx_dcn/csrc -I kernels_cuda/include -I kernels_cuda
//        kernels_cuda/*.cu kernels_cuda/tests/gpu_selftest.cu -o /tmp/mx_dcn_gpu_selftest  (one line)
//   /tmp/mx_dcn_gpu_selftest        # prints "N passed, M failed"; exit status 1 on any failure
//
// ci/nvcc_check.sh compiles this file too (so it cannot rot), but cannot run it.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "launch.cuh"

using namespace mx_dcn_cuda;

namespace {

template <typename T> DType dtype_tag();
template <> DType dtype_tag<float>() { return DType::kFloat32; }
template <> DType dtype_tag<double>() { return DType::kFloat64; }
template <> DType dtype_tag<__half>() { return DType::kFloat16; }
template <> DType dtype_tag<__nv_bfloat16>() { return DType::kBFloat16; }

int failures = 0, passes = 0;

#define SELFTEST_CUDA(call)                                                                   \
  do {                                                                                        \
    const cudaError_t err_ = (call);                                                          \
    if (err_ != cudaSuccess) {                                                                \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(err_), __FILE__, __LINE__); \
      std::exit(2);                                                                           \
    }                                                                                         \
  } while (0)

struct Lcg {  // deterministic inputs without <random>'s platform differences
  unsigned long long s = 88172645463325252ull;
  double uniform() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) / 9007199254740992.0;
  }
  double normal() { return std::sqrt(-2.0 * std::log(uniform() + 1e-300)) * std::cos(6.283185307179586 * uniform()); }
};

template <typename T>
struct Device {
  T* ptr = nullptr;
  size_t n = 0;
  explicit Device(size_t count) : n(count) { SELFTEST_CUDA(cudaMalloc(&ptr, count * sizeof(T) + 1)); }
  Device(const Device&) = delete;
  ~Device() { cudaFree(ptr); }
  void upload(const std::vector<T>& v) { SELFTEST_CUDA(cudaMemcpy(ptr, v.data(), n * sizeof(T), cudaMemcpyHostToDevice)); }
  std::vector<T> download() const {
    std::vector<T> v(n);
    SELFTEST_CUDA(cudaMemcpy(v.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
};

template <typename T>
double to_double(T v) { return static_cast<double>(Convert<T>::load(v)); }

template <typename A, typename B>
void expect_close(const char* what, const char* type, const std::vector<A>& got, const std::vector<B>& want, double rtol) {
  double scale = 0, err = 0;
  for (size_t k = 0; k < want.size(); ++k) {
    scale = std::fmax(scale, std::fabs(to_double(want[k])));
    err = std::fmax(err, std::fabs(to_double(got[k]) - to_double(want[k])));
  }
  const bool ok = err <= rtol * (1.0 + scale) && !std::isnan(err);
  (ok ? passes : failures) += 1;
  if (!ok) std::printf("FAILED %s (%s): max error %.3e, allowed %.3e\n", what, type, err, rtol * (1.0 + scale));
}

struct PlainAdd {
  template <typename A>
  __host__ __device__ void operator()(A* address, A value) const { *address += value; }
};

template <typename T>
void run_case(const Geometry& g, bool has_mask, const char* type, double rtol) {
  using acc_t = typename Convert<T>::acc_t;
  const int64_t x_count = g.batch * g.channels * g.height * g.width;
  const int64_t col_count = g.channels * g.taps() * g.batch * g.out_pixels();
  Lcg rng;
  auto make = [&](int64_t count, double scale, double shift) {
    std::vector<T> v(count);
    for (auto& e : v) e = Convert<T>::store(static_cast<acc_t>(shift + scale * rng.normal()));
    return v;
  };
  const std::vector<T> x = make(x_count, 1.0, 0.0), offset = make(2 * g.points(), 1.5, 0.0);
  const std::vector<T> mask = has_mask ? make(g.points(), 0.3, 0.5) : std::vector<T>();
  const std::vector<T> gcols = make(col_count, 1.0, 0.0);
  const T* mask_h = has_mask ? mask.data() : nullptr;

  // Host reference in the accumulation type, one call per thread index, as the launchers split.
  const int64_t cpt = channels_per_thread(g), chunks = channel_chunks(g, cpt), items = sample_threads(g, cpt);
  std::vector<T> cols_ref(col_count), goff_ref(2 * g.points()), gmask_ref(has_mask ? g.points() : 0);
  std::vector<acc_t> gx_ref(x_count, acc_t(0)), partial(3 * items);
  const CoordOutputs<T> out_h{goff_ref.data(), has_mask ? gmask_ref.data() : nullptr, chunks > 1 ? partial.data() : nullptr};
  for (int64_t it = 0; it < items; ++it) {
    im2col_item<T, int64_t>(g, cpt, x.data(), offset.data(), mask_h, cols_ref.data(), it);
    col2im_coord_item<T, int64_t>(g, cpt, x.data(), offset.data(), mask_h, gcols.data(), out_h, gx_ref.data(),
                                  PlainAdd{}, it);
  }
  if (chunks > 1)
    for (int64_t i = 0; i < g.points(); ++i) col2im_coord_reduce<T, int64_t>(g, chunks, mask_h, out_h, i);

  Device<T> d_x(x_count), d_off(2 * g.points()), d_mask(has_mask ? g.points() : 1), d_gcols(col_count);
  Device<T> d_cols(col_count), d_goff(2 * g.points()), d_gmask(has_mask ? g.points() : 1);
  Device<acc_t> d_gx(x_count), d_gx_det(x_count);
  Device<unsigned char> d_coord_ws(col2im_coord_workspace_bytes(dtype_tag<T>(), g) + 8);
  d_x.upload(x);
  d_off.upload(offset);
  if (has_mask) d_mask.upload(mask);
  d_gcols.upload(gcols);
  const void* mask_d = has_mask ? d_mask.ptr : nullptr;
  cudaStream_t stream;
  SELFTEST_CUDA(cudaStreamCreate(&stream));
  SELFTEST_CUDA(im2col(dtype_tag<T>(), g, d_x.ptr, d_off.ptr, mask_d, d_cols.ptr, stream));
  SELFTEST_CUDA(cudaMemsetAsync(d_gx.ptr, 0, x_count * sizeof(acc_t), stream));
  SELFTEST_CUDA(col2im_coord(dtype_tag<T>(), g, d_x.ptr, d_off.ptr, mask_d, d_gcols.ptr, d_goff.ptr,
                             has_mask ? d_gmask.ptr : nullptr, d_gx.ptr, d_coord_ws.ptr, d_coord_ws.n, stream));
  size_t ws_bytes = 0;
  SELFTEST_CUDA(col2im_deterministic_workspace_bytes(dtype_tag<T>(), g, &ws_bytes));
  Device<unsigned char> d_ws(ws_bytes);
  std::vector<std::vector<acc_t>> det_runs;
  for (int run = 0; run < 2; ++run) {
    SELFTEST_CUDA(col2im_deterministic(dtype_tag<T>(), g, d_off.ptr, mask_d, d_gcols.ptr, d_gx_det.ptr, d_ws.ptr,
                                       ws_bytes, stream));
    SELFTEST_CUDA(cudaStreamSynchronize(stream));
    det_runs.push_back(d_gx_det.download());
  }
  SELFTEST_CUDA(cudaStreamDestroy(stream));

  expect_close("im2col", type, d_cols.download(), cols_ref, rtol);
  expect_close("grad offset", type, d_goff.download(), goff_ref, rtol);
  if (has_mask) expect_close("grad mask", type, d_gmask.download(), gmask_ref, rtol);
  expect_close("grad x (atomic)", type, d_gx.download(), gx_ref, rtol);
  expect_close("grad x (deterministic)", type, det_runs[0], gx_ref, rtol);
  const bool same = std::memcmp(det_runs[0].data(), det_runs[1].data(), x_count * sizeof(acc_t)) == 0;
  (same ? passes : failures) += 1;
  if (!same) std::printf("FAILED grad x (deterministic) differs between two runs (%s)\n", type);
}

Geometry make_geometry(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t stride, int64_t pad,
                       int64_t dil, int64_t dg, bool nhwc) {
  Geometry g;
  g.batch = n;
  g.channels = c;
  g.height = h;
  g.width = w;
  g.kernel_h = g.kernel_w = k;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = pad;
  g.dilation_h = g.dilation_w = dil;
  g.deformable_groups = dg;
  g.out_h = mx_dcn::conv_out_size(h, k, stride, pad, dil);
  g.out_w = mx_dcn::conv_out_size(w, k, stride, pad, dil);
  g = with_default_layout(g);
  if (nhwc) {
    g.x_stride_pixel = c;
    g.x_stride_c = 1;
    g.x_stride_n = h * w * c;
  }
  return g;
}

}  // namespace

int main() {
  const Geometry geometries[] = {
      make_geometry(2, 8, 9, 10, 3, 1, 1, 1, 1, false),
      make_geometry(2, 8, 11, 9, 3, 2, 0, 2, 2, false),
      make_geometry(1, 16, 7, 7, 3, 1, 1, 1, 4, true),
      make_geometry(1, 256, 8, 8, 3, 1, 1, 1, 1, false),   // few points: channels split
      make_geometry(4, 32, 64, 64, 3, 1, 1, 1, 1, true),   // many points: one thread per point
  };
  for (const Geometry& g : geometries) {
    for (bool has_mask : {true, false}) {
      run_case<double>(g, has_mask, "float64", 1e-11);
      run_case<float>(g, has_mask, "float32", 1e-4);
      run_case<__half>(g, has_mask, "float16", 2e-2);
      run_case<__nv_bfloat16>(g, has_mask, "bfloat16", 8e-2);
    }
  }
  std::printf("%d passed, %d failed\n", passes, failures);
  return failures == 0 ? 0 : 1;
}
