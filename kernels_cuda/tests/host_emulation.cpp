// Runs the per-thread functions of the CUDA kernels (mx_dcn_cuda/point_ops.h) on the host, one call
// per CUDA thread index, so tests/test_cuda_backend.py can check the CUDA path's indexing and
// gradient formulas against the float64 oracle without a GPU. Test harness only; not shipped.
//
// usage: host_emulation DIR f32|f64 32|64 nchw|nhwc N C H W kh kw sh sw ph pw dh dw dg has_mask
// reads  DIR/x.bin (N,C,H,W) DIR/offset.bin DIR/mask.bin DIR/gcols.bin (C*K, N*P), float64
// writes DIR/cols.bin DIR/goff.bin DIR/gmask.bin DIR/gx_atomic.bin DIR/gx_det.bin (NCHW), float64
// prints needs_int64_index=0|1 and channels_per_thread=N; with DIR "-" it only prints those.
// MXDCN_HOST_CPT=N forces N channels per sampling thread (the launchers pick it by size).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "mx_dcn_cuda/point_ops.h"

using mx_dcn_cuda::Geometry;

namespace {

std::vector<double> read_file(const std::string& path, size_t count) {
  std::vector<double> v(count);
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr || std::fread(v.data(), sizeof(double), count, f) != count) {
    std::fprintf(stderr, "cannot read %zu doubles from %s\n", count, path.c_str());
    std::exit(2);
  }
  std::fclose(f);
  return v;
}

template <typename T>
void write_file(const std::string& path, const std::vector<T>& v) {
  std::vector<double> d(v.begin(), v.end());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(d.data(), sizeof(double), d.size(), f) != d.size()) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(2);
  }
  std::fclose(f);
}

template <typename T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

struct PlainAdd {
  template <typename A>
  void operator()(A* address, A value) const { *address += value; }
};

// x (NCHW values) stored with the geometry's strides; returns the buffer.
template <typename T>
std::vector<T> to_layout(const Geometry& g, const std::vector<double>& nchw) {
  const int64_t hw = g.height * g.width;
  std::vector<T> out(static_cast<size_t>(g.batch * g.channels * hw));
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t p = 0; p < hw; ++p)
        out[n * g.x_stride_n + c * g.x_stride_c + p * g.x_stride_pixel] = static_cast<T>(nchw[(n * g.channels + c) * hw + p]);
  return out;
}

template <typename A>
std::vector<double> from_layout(const Geometry& g, const std::vector<A>& buf) {
  const int64_t hw = g.height * g.width;
  std::vector<double> out(buf.size());
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t p = 0; p < hw; ++p)
        out[(n * g.channels + c) * hw + p] = static_cast<double>(buf[n * g.x_stride_n + c * g.x_stride_c + p * g.x_stride_pixel]);
  return out;
}

template <typename T, typename index_t>
void run(const std::string& dir, const Geometry& g, bool has_mask) {
  using acc_t = typename mx_dcn_cuda::Convert<T>::acc_t;
  const int64_t hw = g.height * g.width, P = g.out_pixels(), K = g.taps();
  const int64_t x_count = g.batch * g.channels * hw, col_count = g.channels * K * g.batch * P;
  const std::vector<T> x = to_layout<T>(g, read_file(dir + "/x.bin", x_count));
  const std::vector<T> offset = cast<T>(read_file(dir + "/offset.bin", 2 * g.points()));
  const std::vector<T> mask = has_mask ? cast<T>(read_file(dir + "/mask.bin", g.points())) : std::vector<T>();
  const std::vector<T> gcols = cast<T>(read_file(dir + "/gcols.bin", col_count));
  const T* mask_ptr = has_mask ? mask.data() : nullptr;

  // Channels per sampling thread: the launchers' choice, or MXDCN_HOST_CPT to cover other splits.
  const char* forced = std::getenv("MXDCN_HOST_CPT");
  int64_t cpt = forced ? std::atoll(forced) : mx_dcn_cuda::channels_per_thread(g);
  cpt = std::max<int64_t>(1, std::min(cpt, g.group_channels()));
  std::vector<T> cols(col_count, T(-12345));  // every element must be written
  for (int64_t item = 0; item < mx_dcn_cuda::sample_threads(g, cpt); ++item)
    mx_dcn_cuda::im2col_item<T, index_t>(g, static_cast<index_t>(cpt), x.data(), offset.data(), mask_ptr, cols.data(),
                                         static_cast<index_t>(item));

  // col2im with the same channel split: partial sums per chunk, then the ordered reduction.
  std::vector<T> goff(2 * g.points(), T(-12345)), gmask(has_mask ? g.points() : 0, T(-12345));
  std::vector<acc_t> gx_atomic(x_count, acc_t(0));
  const int64_t chunks = mx_dcn_cuda::channel_chunks(g, cpt), items = mx_dcn_cuda::sample_threads(g, cpt);
  std::vector<acc_t> partial(chunks > 1 ? 3 * items : 0, acc_t(-12345));
  const mx_dcn_cuda::CoordOutputs<T> out{goff.data(), has_mask ? gmask.data() : nullptr,
                                         chunks > 1 ? partial.data() : nullptr};
  for (int64_t item = 0; item < items; ++item)
    mx_dcn_cuda::col2im_coord_item<T, index_t>(g, static_cast<index_t>(cpt), x.data(), offset.data(), mask_ptr,
                                               gcols.data(), out, gx_atomic.data(), PlainAdd{},
                                               static_cast<index_t>(item));
  if (chunks > 1)
    for (int64_t i = 0; i < g.points(); ++i)
      mx_dcn_cuda::col2im_coord_reduce<T, index_t>(g, static_cast<index_t>(chunks), mask_ptr, out,
                                                   static_cast<index_t>(i));

  // Deterministic path: entries, a stable sort by key (what the CUB radix sort does), gather.
  const int64_t E = g.entries();
  std::vector<uint64_t> keys(E);
  std::vector<uint32_t> ids(E);
  std::vector<acc_t> coeff(E);
  for (int64_t i = 0; i < g.points(); ++i)
    mx_dcn_cuda::det_entries_point<T, index_t>(g, offset.data(), mask_ptr, keys.data(), ids.data(), coeff.data(),
                                               static_cast<index_t>(i));
  std::vector<uint32_t> order(E);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return keys[a] < keys[b]; });
  std::vector<uint64_t> sorted_keys(E);
  std::vector<uint32_t> sorted_ids(E);
  for (int64_t s = 0; s < E; ++s) {
    sorted_keys[s] = keys[order[s]];
    sorted_ids[s] = ids[order[s]];
  }
  std::vector<acc_t> gx_det(x_count, acc_t(-12345));
  for (int64_t j = 0; j < x_count; ++j)
    mx_dcn_cuda::det_gather_element<T, index_t>(g, gcols.data(), sorted_keys.data(), sorted_ids.data(), coeff.data(),
                                                gx_det.data(), static_cast<index_t>(j));

  write_file(dir + "/cols.bin", cols);
  write_file(dir + "/goff.bin", goff);
  write_file(dir + "/gmask.bin", gmask);
  write_file(dir + "/gx_atomic.bin", from_layout(g, gx_atomic));
  write_file(dir + "/gx_det.bin", from_layout(g, gx_det));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 19) {
    std::fprintf(stderr, "usage: %s DIR f32|f64 32|64 nchw|nhwc N C H W kh kw sh sw ph pw dh dw dg has_mask\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1], dtype = argv[2], index = argv[3], layout = argv[4];
  int64_t v[14];
  for (int k = 0; k < 14; ++k) v[k] = std::atoll(argv[5 + k]);
  Geometry g;
  g.batch = v[0];
  g.channels = v[1];
  g.height = v[2];
  g.width = v[3];
  g.kernel_h = v[4];
  g.kernel_w = v[5];
  g.stride_h = v[6];
  g.stride_w = v[7];
  g.pad_h = v[8];
  g.pad_w = v[9];
  g.dilation_h = v[10];
  g.dilation_w = v[11];
  g.deformable_groups = v[12];
  const bool has_mask = v[13] != 0;
  g.out_h = mx_dcn::conv_out_size(g.height, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h);
  g.out_w = mx_dcn::conv_out_size(g.width, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w);
  g = mx_dcn_cuda::with_default_layout(g);
  if (layout == "nhwc") {
    g.x_stride_pixel = g.channels;
    g.x_stride_c = 1;
    g.x_stride_n = g.height * g.width * g.channels;
  }
  const char* bad = mx_dcn_cuda::geometry_error(g);
  if (std::strlen(bad) != 0) {
    std::fprintf(stderr, "bad geometry: %s\n", bad);
    return 2;
  }
  std::printf("needs_int64_index=%d\nchannels_per_thread=%lld\n", mx_dcn_cuda::needs_int64_index(g) ? 1 : 0,
              static_cast<long long>(mx_dcn_cuda::channels_per_thread(g)));
  if (dir == "-") return 0;  // only the index-width decision (sizes too large to run here)
  const bool wide = index == "64";
  if (dtype == "f64") {
    wide ? run<double, int64_t>(dir, g, has_mask) : run<double, int32_t>(dir, g, has_mask);
  } else {
    wide ? run<float, int64_t>(dir, g, has_mask) : run<float, int32_t>(dir, g, has_mask);
  }
  return 0;
}
