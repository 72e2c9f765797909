// The CPU implementation of mx_dcn::deform_conv2d and mx_dcn::deform_conv2d_backward.
//
// Image by image (small images several at a time): a channels-last copy of the
// image (so a sample's four corners are four contiguous channel vectors), then tiles of output pixels
// small enough for a core's cache, one tile per task on the ATen thread pool (few synchronisations:
// the OS may take a core away at any time):
//   forward   columns of the tile (im2col) -> GEMM with the permuted weight into a pixel-major
//             tile (tile rows x C_out: 10-25% faster in MKL than the C_out x rows product for
//             C_out of 64-128), transposed into the output with the bias added on the way;
//   backward  per tile: grad columns (GEMM) -> grad offset / mask (each pixel reducing over its own
//             channels) and scatter plans; columns -> a partial grad weight. Then, per round of
//             tiles, grad x scattered into a channels-last accumulator in parallel over channel
//             ranges (no two threads write one element, every element sums its terms in pixel
//             order), and the partial grad weights summed in tile order.
// Tile boundaries do not depend on the thread count, so every result is bitwise identical with
// any number of threads. Buffers are sized per image and per tile, never per batch, and the tile
// shrinks to fit the workspace budget.
// Half types (float16, bfloat16) are computed in float32; float64 in float64.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/accumulate.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "cpu/buffer_cache.h"
#include "cpu/dispatch_info.h"
#include "cpu/kernels.h"
#include "op_checks.h"
#include "workspace_stats.h"

namespace mx_dcn {
namespace cpu {

namespace {

// Whether the matrix products use the kernel set's own GEMM where it has one (float32, avx512 set).
// By default on CPUs that are not Intel's: on an AMD Zen 4 oneMKL, the BLAS of torch's x86 builds,
// reached 62-93% of our throughput on the tile products; on an Intel machine MKL matched or beat a
// loop like ours (see the README; `python -m mx_dcn.bench --gemm` measures both).
// MX_DCN_CPU_GEMM=own|blas forces a side ("own" only where the set has one).
bool use_own_gemm() {
  static const bool own = [] {
    const char* forced = std::getenv("MX_DCN_CPU_GEMM");
    if (forced != nullptr && std::strlen(forced) > 0) {
      TORCH_CHECK(std::strcmp(forced, "own") == 0 || std::strcmp(forced, "blas") == 0, "MX_DCN_CPU_GEMM=", forced,
                  ": expected own or blas");
      return std::strcmp(forced, "own") == 0;
    }
#if MX_DCN_X86
    __builtin_cpu_init();
    return !__builtin_cpu_is("intel");
#else
    return false;  // the own GEMM is an AVX-512 one
#endif
  }();
  return own;
}

const KernelSet& pick_kernels() {
  use_own_gemm();  // a bad MX_DCN_CPU_GEMM is reported with the first call, whatever the set
  // MX_DCN_CPU_ISA=base|avx2|avx512 forces a set (tests use it to cover every variant).
  const char* forced = std::getenv("MX_DCN_CPU_ISA");
#if MX_DCN_X86
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  const bool avx512 = false, avx2 = false;
#endif
  if (forced != nullptr && std::strlen(forced) > 0) {
    if (std::strcmp(forced, "base") == 0) return kernels_base();
    if (std::strcmp(forced, "avx2") == 0 && avx2) return kernels_avx2();
    if (std::strcmp(forced, "avx512") == 0 && avx512) return kernels_avx512();
    TORCH_CHECK(false, "MX_DCN_CPU_ISA=", forced, ": expected base, avx2 or avx512 supported by this CPU");
  }
  if (avx512) return kernels_avx512();
  if (avx2) return kernels_avx2();
  return kernels_base();
}

template <typename T>
const KernelTable<T>& table();
template <>
const KernelTable<float>& table<float>() {
  return kernels().f32;
}
template <>
const KernelTable<double>& table<double>() {
  return kernels().f64;
}

// Bytes of column rows one tile aims at: about half a core's L2 here, so the columns the sampling
// writes are still cached when the GEMM reads them. MX_DCN_TILE_KB overrides it (for tuning).
int64_t tile_target_bytes() {
  static const int64_t bytes = [] {
    const char* raw = std::getenv("MX_DCN_TILE_KB");
    const int64_t kb = raw ? std::atoll(raw) : 0;
    return (kb > 0 ? kb : int64_t(1024)) * 1024;
  }();
  return bytes;
}

// Tiles per backward round (see backward_impl): fewer means the round's grad columns are still in
// cache when scattered, more means fewer synchronisations. MX_DCN_ROUND_TILES overrides it (tuning).
int64_t round_tiles_setting() {
  static const int64_t tiles = [] {
    const char* raw = std::getenv("MX_DCN_ROUND_TILES");
    const int64_t v = raw ? std::atoll(raw) : 0;
    return v > 0 ? v : int64_t(2);
  }();
  return tiles;
}

// Temporary buffers of one call, taken from the buffer cache and given back when the call ends;
// their total (the call's workspace) is recorded for tests. Declare it before the tensors it hands
// out, so that they are gone when it gives the buffers back.
class Workspace {
 public:
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  ~Workspace() {
    record_workspace(held_);
    give_back_buffers(buffers_);
  }
  at::Tensor empty(at::IntArrayRef sizes, at::ScalarType type) {
    const int64_t bytes = c10::multiply_integers(sizes) * static_cast<int64_t>(c10::elementSize(type));
    buffers_.push_back(take_buffer(bytes));
    held_ += bytes;
    return buffers_.back().narrow(0, 0, bytes).view(type).view(sizes);
  }
  // A tensor another op produced for this call (a converted copy): counted unless it is `original`.
  at::Tensor hold(at::Tensor t, const at::Tensor& original) {
    if (!t.is_same(original) && t.data_ptr() != original.data_ptr()) held_ += static_cast<int64_t>(t.nbytes());
    return t;
  }

 private:
  int64_t held_ = 0;
  std::vector<at::Tensor> buffers_;
};

struct Args {
  Geometry g;
  int64_t batch, out_channels;
};

Args check_args(const at::Tensor& input, const at::Tensor& offset, const std::optional<at::Tensor>& mask,
                const at::Tensor& weight, const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, int64_t dg) {
  const OpShape s = check_op_shape(input, weight, offset, stride, padding, dilation, groups, dg);
  const auto type = input.scalar_type();
  TORCH_CHECK_TYPE(at::isFloatingType(type), "input: expected a floating dtype, got ", type);
  auto same = [&](const at::Tensor& t, const char* name) {
    TORCH_CHECK_TYPE(t.scalar_type() == type, name, ": expected dtype ", type, ", got ", t.scalar_type());
    TORCH_CHECK_VALUE(t.device().is_cpu(), name, ": expected a CPU tensor, got ", t.device());
  };
  same(input, "input");
  same(offset, "offset");
  same(weight, "weight");
  if (mask) same(*mask, "mask");
  if (bias) same(*bias, "bias");
  check_sampling_shapes(s, dg, offset, mask, bias);

  Args a;
  Geometry& g = a.g;
  a.batch = s.batch;
  a.out_channels = s.out_channels;
  g.channels = s.channels;
  g.height = s.height;
  g.width = s.width;
  g.out_h = s.out_h;
  g.out_w = s.out_w;
  g.kernel_h = s.kernel_h;
  g.kernel_w = s.kernel_w;
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dil_h = dilation[0];
  g.dil_w = dilation[1];
  g.groups = groups;
  g.deformable_groups = dg;
  TORCH_CHECK_VALUE((g.height * g.width + 1) < (int64_t(1) << 31), "input: H*W too large");
  // Undeformed sampling coordinates lie in [-pad, H + pad): the sampling plans compute them in 32 bits.
  TORCH_CHECK_VALUE(g.height + 2 * g.pad_h < (int64_t(1) << 31) && g.width + 2 * g.pad_w < (int64_t(1) << 31),
                    "padding: H + 2*pad_h and W + 2*pad_w must stay below 2^31, got ", g.height + 2 * g.pad_h,
                    " and ", g.width + 2 * g.pad_w);
  return a;
}

// Tiles in flight at once that the budget is sized for: the tiling (hence every bit of a result) does
// not depend on the thread count up to this many threads; beyond, the budget stretches instead.
constexpr int64_t kMaxSlots = 8;

// Smallest tile the balancing below may cut an image into: each tile costs a task and a few GEMM calls
// (~10 us), which a small image's tiles of a handful of rows would not repay.
constexpr int64_t kMinBalancedRows = 32;

// Rows per tile: cache-sized, within what the budget leaves after the per-image buffers; then the tile
// count rounded up to a multiple of kMaxSlots, or where tiles would fall below kMinBalancedRows rows, of
// the largest power of two below it that fits (2 tiles rather than 3 for a 100-pixel image), and the
// tiles made equal, so that 1, 2, 4 or 8 threads finish an image together (2 threads and 5 tiles would
// leave one idle for most of a tile: 10-17% of the forward here). A function of the problem only, never
// of the thread count.
int64_t tile_rows(int64_t pixels, int64_t cache_row_bytes, int64_t budget_row_bytes, int64_t fixed_bytes) {
  const int64_t cache_rows = std::max<int64_t>(32, tile_target_bytes() / std::max<int64_t>(1, cache_row_bytes));
  const int64_t budget_rows = (get_workspace_budget() - fixed_bytes) / std::max<int64_t>(1, budget_row_bytes);
  const int64_t max_rows = std::max<int64_t>(1, std::min({pixels, cache_rows, budget_rows}));
  const int64_t needed = (pixels + max_rows - 1) / max_rows;
  const int64_t most = pixels / kMinBalancedRows;
  int64_t tiles = needed;
  for (int64_t unit = kMaxSlots; unit >= 1; unit /= 2) {
    const int64_t rounded = (needed + unit - 1) / unit * unit;
    if (rounded <= most) {
      tiles = rounded;
      break;
    }
  }
  return (pixels + tiles - 1) / tiles;
}

// Images per parallel round when an image has `tiles` tiles: one, or for a small image enough of them
// to make `target` tiles, at most `batch`, and no more extra images than `spare` bytes of the budget
// hold at `image_bytes` each.
int64_t images_per_round(int64_t batch, int64_t tiles, int64_t target, int64_t spare, int64_t image_bytes) {
  if (tiles >= target) return 1;
  const int64_t fit = 1 + std::max<int64_t>(0, spare) / std::max<int64_t>(1, image_bytes);
  return std::max<int64_t>(1, std::min({batch, (target + tiles - 1) / tiles, fit}));
}

// Per-image view of `t` as a contiguous (rows, P) matrix of type T: the tensor itself when it
// already is one, else a copy in `stage` (allocated on first use).
template <typename T>
const T* staged(const at::Tensor& image, at::Tensor& stage, Workspace& ws) {
  const auto acc = c10::CppTypeToScalarType<T>::value;
  if (image.scalar_type() == acc && image.is_contiguous()) return image.const_data_ptr<T>();
  if (!stage.defined()) stage = ws.empty(image.sizes(), acc);
  stage.copy_(image);
  return stage.const_data_ptr<T>();
}

// Oneapi MKL's C entry point (torch's x86 builds link MKL and export it): one BLAS thread for a
// GEMM a tile task runs, so a tile's result never depends on how many threads the BLAS was given.
// A weak reference: with another BLAS it is null and the BLAS runs single-threaded inside the
// ATen (OpenMP) parallel region anyway.
extern "C" int MKL_Set_Num_Threads_Local(int) __attribute__((weak));

class SingleThreadBlas {
 public:
  SingleThreadBlas()
      : active_(MKL_Set_Num_Threads_Local != nullptr), previous_(active_ ? MKL_Set_Num_Threads_Local(1) : 0) {}
  ~SingleThreadBlas() {
    if (active_) MKL_Set_Num_Threads_Local(previous_);
  }
  SingleThreadBlas(const SingleThreadBlas&) = delete;
  SingleThreadBlas& operator=(const SingleThreadBlas&) = delete;

 private:
  bool active_;
  int previous_;
};

// dst = a b (2-d, of type T): the kernel set's own GEMM where it has one, it is chosen (use_own_gemm)
// and the rows of b and dst are contiguous, else the BLAS (at::mm_out). Called inside tasks: one
// thread each.
template <typename T>
void matmul(const KernelTable<T>& kern, at::Tensor dst, const at::Tensor& a, const at::Tensor& b) {
  if (kern.gemm != nullptr && use_own_gemm() && b.stride(1) == 1 && dst.stride(1) == 1) {
    TORCH_INTERNAL_ASSERT(a.size(1) == b.size(0) && dst.size(0) == a.size(0) && dst.size(1) == b.size(1));
    kern.gemm(a.size(0), b.size(1), a.size(1), a.const_data_ptr<T>(), a.stride(0), a.stride(1), b.const_data_ptr<T>(),
              b.stride(0), dst.mutable_data_ptr<T>(), dst.stride(0));
    return;
  }
  at::mm_out(dst, a, b);
}

// Runs task(i, slot) for i in [0, count) on the ATen thread pool; slot (< slots(count)) names the
// buffers the task may use: tasks running at the same time never share a slot.
int64_t slots(int64_t count) { return std::max<int64_t>(1, std::min<int64_t>(count, at::get_num_threads())); }

// Tasks are handed out one at a time (an atomic counter), not in fixed blocks: when the OS takes a
// core away, the other workers take its share instead of waiting for it. Which worker runs a task
// never changes the task's result.
template <typename Fn>
void run_tasks(int64_t count, Fn&& task) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, slots(count), 1, [&](int64_t b, int64_t e) {
    // Pool threads do not inherit the caller's "below autograd" dispatch state; the at:: calls of
    // a task are kernel internals and must not see autograd.
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    SingleThreadBlas one;
    for (int64_t slot = b; slot < e; ++slot) {
      for (int64_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) task(i, slot);
    }
  });
}

// Runs fn(i) for i in [0, count), a pure copy of `bytes_each` per call, on the thread pool; inline when
// the whole job is under 64 KB (waking the pool costs more than copying that).
template <typename Fn>
void run_copies(int64_t count, int64_t bytes_each, Fn&& fn) {
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, bytes_each));
  at::parallel_for(0, count, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) fn(i);
  });
}

// The spatial bands a channels-last copy is split into: a few thousand elements each (enough to
// amortise a task).
struct SpatialBands {
  int64_t size, count;
  SpatialBands(int64_t hw, int64_t channels)
      : size(std::max<int64_t>(64, 16384 / std::max<int64_t>(1, channels)) / 16 * 16),
        count((hw + size - 1) / size) {}
};

// Runs fn(s_begin, s_end) over the H*W spatial positions of a plane of `channels` channels, by
// SpatialBands, on the thread pool.
template <typename Fn>
void for_spatial_bands(int64_t hw, int64_t channels, Fn&& fn) {
  const SpatialBands bands(hw, channels);
  run_tasks(bands.count, [&](int64_t i, int64_t) { fn(i * bands.size, std::min(hw, (i + 1) * bands.size)); });
}

// Whether fill_channels_last copies `image` with our transpose, by bands (else with ATen's copy).
template <typename T>
bool fills_by_bands(const at::Tensor& image) {
  return image.scalar_type() == c10::CppTypeToScalarType<T>::value && image.is_contiguous();
}

// Band i of fill_channels_last for an image (C, H*W) that fills_by_bands.
template <typename T>
void fill_channels_last_band(T* x_cl, const T* image, int64_t c, int64_t hw, const SpatialBands& bands, int64_t i,
                             const KernelTable<T>& kern) {
  kern.transpose(image, hw, x_cl, c, i * bands.size, std::min(hw, (i + 1) * bands.size), 0, c, nullptr);
}

// Rows [0, H*W) of x_cl (H*W + 1, C) = image (C, H, W) transposed; the last row is left alone.
// A blocked transpose on the thread pool when the image is already of type T and contiguous,
// else ATen's copy (which also converts the dtype).
template <typename T>
void fill_channels_last(const at::Tensor& x_cl, const at::Tensor& image, const KernelTable<T>& kern) {
  const int64_t c = image.size(0), h = image.size(1), w = image.size(2), hw = h * w;
  if (!fills_by_bands<T>(image)) {
    x_cl.narrow(0, 0, hw).view({h, w, c}).copy_(image.permute({1, 2, 0}));
    return;
  }
  const SpatialBands bands(hw, c);
  run_tasks(bands.count, [&](int64_t i, int64_t) {
    fill_channels_last_band(x_cl.mutable_data_ptr<T>(), image.const_data_ptr<T>(), c, hw, bands, i, kern);
  });
}

// image (C, H, W) = rows [0, H*W) of x_cl (H*W + 1, C) transposed (the inverse of fill_channels_last).
template <typename T>
void store_channels_first(at::Tensor image, const at::Tensor& x_cl, const KernelTable<T>& kern) {
  const int64_t c = image.size(0), h = image.size(1), w = image.size(2), hw = h * w;
  if (image.scalar_type() != c10::CppTypeToScalarType<T>::value || !image.is_contiguous()) {
    image.permute({1, 2, 0}).copy_(x_cl.narrow(0, 0, hw).view({h, w, c}));
    return;
  }
  const T* src = x_cl.const_data_ptr<T>();
  T* dst = image.mutable_data_ptr<T>();
  for_spatial_bands(hw, c, [&](int64_t s0, int64_t s1) { kern.transpose(src, c, dst, hw, 0, c, s0, s1, nullptr); });
}

// The weight (C_out, C_in/groups, kh, kw) as (C_out, K * C_in/groups), tap-major like the column
// rows of one conv group: per output channel a (C_in/groups, K) -> (K, C_in/groups) transpose, run
// on the thread pool (ATen's strided copy took 5% of a C=256 forward here).
template <typename T>
at::Tensor tap_major_weight(const at::Tensor& weight, int64_t K, const KernelTable<T>& kern, Workspace& ws) {
  const auto acc = c10::CppTypeToScalarType<T>::value;
  const int64_t cout = weight.size(0), cg = weight.size(1);
  if (weight.scalar_type() != acc || !weight.is_contiguous()) {
    return ws.hold(weight.to(acc).reshape({cout, cg, K}).transpose(1, 2).contiguous().view({cout, K * cg}), weight);
  }
  at::Tensor wmat = ws.empty({cout, K * cg}, acc);
  const T* src = weight.const_data_ptr<T>();
  T* dst = wmat.mutable_data_ptr<T>();
  run_copies(cout, cg * K * sizeof(T),
             [&](int64_t o) { kern.transpose(src + o * cg * K, K, dst + o * K * cg, cg, 0, K, 0, cg, nullptr); });
  return wmat;
}

// The forward GEMM's right operand, (G, K * C_in/groups, C_out/groups): group g's block holds
// weight[g * C_out/groups + o][c][k] at row k * C_in/groups + c, column o. One pass, in bands of
// rows on the thread pool (two passes, through the tap-major weight, took 15% of a C=256 forward).
template <typename T>
at::Tensor gemm_weight(const at::Tensor& weight, int64_t groups, int64_t K, const KernelTable<T>& kern,
                       Workspace& ws) {
  const auto acc = c10::CppTypeToScalarType<T>::value;
  const int64_t cout = weight.size(0), cg = weight.size(1), cog = cout / groups, kcg = K * cg;
  if (weight.scalar_type() != acc || !weight.is_contiguous()) {
    return ws.hold(weight.to(acc).reshape({groups, cog, cg, K}).permute({0, 3, 2, 1}).contiguous()
                       .view({groups, kcg, cog}), weight);
  }
  at::Tensor wt = ws.empty({groups, kcg, cog}, acc);
  const T* src = weight.const_data_ptr<T>();
  T* dst = wt.mutable_data_ptr<T>();
  const int64_t band = 64, bands = (kcg + band - 1) / band;
  run_copies(groups * bands, band * cog * sizeof(T), [&](int64_t i) {
    const int64_t grp = i / bands, r0 = (i % bands) * band;
    kern.gemm_weight(src + grp * cog * kcg, cog, cg, K, r0, std::min(kcg, r0 + band), dst + grp * kcg * cog);
  });
  return wt;
}

// The forward's buffers that do not depend on the tile: the channels-last copies (two when images
// alternate), the staged offset and mask of an image, the GEMM weight.
int64_t forward_fixed_bytes(const Args& a, int64_t elem) {
  const Geometry& g = a.g;
  const int64_t copy_bytes = (g.height * g.width + 1) * g.channels * elem;
  const int64_t stage_bytes = 3 * g.taps() * g.deformable_groups * g.pixels() * elem;
  return (a.batch > 1 ? 2 : 1) * copy_bytes + stage_bytes + a.out_channels * g.col_width() / g.groups * elem;
}

// Rows per forward tile, sized for kMaxSlots tiles in flight (see kMaxSlots).
int64_t forward_tile_rows(const Args& a, int64_t elem) {
  const int64_t KC = a.g.col_width();
  return tile_rows(a.g.pixels(), KC * elem, kMaxSlots * (KC + a.out_channels) * elem, forward_fixed_bytes(a, elem));
}

template <typename T>
at::Tensor forward_impl(const Args& a, const at::Tensor& input, const at::Tensor& offset,
                        const std::optional<at::Tensor>& mask, const at::Tensor& weight,
                        const std::optional<at::Tensor>& bias) {
  const Geometry& g = a.g;
  const auto acc = c10::CppTypeToScalarType<T>::value;
  const int64_t N = a.batch, C = g.channels, K = g.taps(), KC = g.col_width(), P = g.pixels();
  const int64_t HW = g.height * g.width, G = g.groups, Cout = a.out_channels, Cog = Cout / G, KCg = KC / G;
  at::Tensor out = at::empty({N, Cout, g.out_h, g.out_w}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (N == 0) return out;

  Workspace ws;
  const KernelTable<T>& kern = table<T>();
  const at::Tensor wt = gemm_weight(weight, G, K, kern, ws);
  at::Tensor bias_acc;
  if (bias) bias_acc = ws.hold(bias->to(acc).contiguous(), *bias);
  const bool direct = out.scalar_type() == acc;  // our transpose writes the output, else ATen's copy
  // Per image: its channels-last copy, and its offset and mask when they must be staged.
  const int64_t copy_bytes = (HW + 1) * C * sizeof(T), stage_bytes = 3 * K * g.deformable_groups * P * sizeof(T);
  const int64_t fixed = forward_fixed_bytes(a, sizeof(T));
  const int64_t rows = forward_tile_rows(a, sizeof(T));
  const int64_t tiles = (P + rows - 1) / rows;
  // Images are taken in rounds, one parallel region each. An image of fewer than kMaxSlots tiles (a
  // small feature map) shares its round with the next ones, up to about kMaxSlots tiles, so that the
  // threads are not left waiting while one of them runs the image's only tile (~35% of a (2,256,7,7)
  // call was spent so). The buffers of the extra images come from what the budget leaves.
  const int64_t spare = get_workspace_budget() - fixed - kMaxSlots * rows * (KC + Cout) * int64_t(sizeof(T));
  const int64_t per_round = images_per_round(N, tiles, kMaxSlots, spare, 2 * copy_bytes + stage_bytes);
  const int64_t rounds = (N + per_round - 1) / per_round;
  // Two sets of channels-last buffers when there are several rounds: the tasks of a round end with the
  // bands of the next round's copies, so a thread done with its last tile takes a band instead of
  // waiting for the others at the end of the round (and the copies cost no synchronisation of their own).
  const int64_t sets = rounds > 1 ? 2 : 1;

  const bool by_bands = fills_by_bands<T>(input[0]);
  const SpatialBands bands(HW, C);
  // A round of a single tile (one small image) samples it first, then splits its product by blocks of 64
  // output channels (the own GEMM's column block, never across a conv group), so that the threads share
  // the GEMM ((1,512,7,7): forward 1.74-2.25 -> 1.30-1.66 times the dense convolution; rounds of 2 tiles,
  // (1,256,10,10), got no faster split: 1.23-1.30 -> 1.32-1.37). Only for products of 2^24 multiply-adds or
  // more (~0.3 ms), where the extra synchronisation is small beside the time saved. Decided by the
  // problem, never by the thread count, so that a BLAS whose blocks of columns might not sum like its
  // whole product still gives one answer for any count.
  constexpr int64_t kColumnBlock = 64;
  const int64_t blocks_per_group = (Cog + kColumnBlock - 1) / kColumnBlock, column_blocks = G * blocks_per_group;
  const bool split = per_round * tiles == 1 && column_blocks > 1 && P * KCg * Cout >= (int64_t(1) << 24);
  // A tile may get any slot of these; a split round holds its tile's columns until the products.
  const int64_t max_tasks = per_round * tiles + (rounds > 1 && by_bands ? per_round * bands.count : 0);
  const int64_t tile_buffers = split ? per_round * tiles : slots(max_tasks);
  at::Tensor x_cl = ws.empty({sets * per_round, HW + 1, C}, acc);
  x_cl.select(1, HW).zero_();
  // Image n's buffer: set (n / per_round) % sets, place n % per_round in it.
  auto x_cl_index = [&](int64_t n) { return (n / per_round) % sets * per_round + n % per_round; };
  T* const x_cl_data = x_cl.mutable_data_ptr<T>();
  auto x_cl_ptr = [&](int64_t n) { return x_cl_data + x_cl_index(n) * (HW + 1) * C; };
  const T* const input_data = by_bands ? input.const_data_ptr<T>() : nullptr;  // image n at n * stride(0)
  at::Tensor col = ws.empty({tile_buffers, rows, KC}, acc);
  at::Tensor out_tile = ws.empty({tile_buffers, rows, Cout}, acc);
  std::vector<at::Tensor> off_stage(per_round), mask_stage(per_round);

  // Band task i of the copies of images n0, n0 + 1, ...: band i % bands.count of image n0 + i / bands.count.
  auto copy_band = [&](int64_t n0, int64_t i) {
    const int64_t n = n0 + i / bands.count;
    fill_channels_last_band(x_cl_ptr(n), input_data + n * input.stride(0), C, HW, bands, i % bands.count, kern);
  };
  // The copies of images [n0, n1): by bands on the thread pool when they fill by bands.
  auto fill_images = [&](int64_t n0, int64_t n1) {
    if (!by_bands) {
      for (int64_t n = n0; n < n1; ++n) fill_channels_last(x_cl[x_cl_index(n)], input[n], kern);
      return;
    }
    run_tasks((n1 - n0) * bands.count, [&](int64_t i, int64_t) { copy_band(n0, i); });
  };
  fill_images(0, std::min(N, per_round));
  for (int64_t r = 0; r < rounds; ++r) {
    const int64_t n0 = r * per_round, n1 = std::min(N, n0 + per_round), images = n1 - n0;
    const int64_t next_end = std::min(N, n1 + per_round);
    const int64_t band_tasks = by_bands ? (next_end - n1) * bands.count : 0;
    std::vector<ImageInputs<T>> in(images);
    std::vector<T*> out_of(images);
    for (int64_t j = 0; j < images; ++j) {
      const int64_t n = n0 + j;
      in[j] = ImageInputs<T>{x_cl_ptr(n), staged<T>(offset[n], off_stage[j], ws),
                             mask ? staged<T>((*mask)[n], mask_stage[j], ws) : nullptr};
      out_of[j] = direct ? out[n].mutable_data_ptr<T>() : nullptr;
    }
    // Output channels [c0, c1) (within one conv group) of tile t: the GEMM of its columns `cols` into `tile`.
    auto multiply = [&](const at::Tensor& cols, const at::Tensor& tile, int64_t c0, int64_t c1) {
      const int64_t grp = c0 / Cog;
      matmul(kern, tile.narrow(1, c0, c1 - c0), cols.narrow(1, grp * KCg, KCg),
             wt[grp].narrow(1, c0 - grp * Cog, c1 - c0));
    };
    // Output channels [c0, c1) of tile t from `tile` into the output, the bias added on the way.
    auto store = [&](int64_t t, const at::Tensor& tile, int64_t c0, int64_t c1) {
      const int64_t j = t / tiles, p0 = t % tiles * rows, len = tile.size(0);
      if (direct) {
        kern.transpose(tile.const_data_ptr<T>(), Cout, out_of[j] + p0, P, c0, c1, 0, len,
                       bias ? bias_acc.const_data_ptr<T>() : nullptr);
      } else {
        at::Tensor part = tile.narrow(1, c0, c1 - c0);
        if (bias) part.add_(bias_acc.narrow(0, c0, c1 - c0));
        out[n0 + j].view({Cout, P}).narrow(0, c0, c1 - c0).narrow(1, p0, len).copy_(part.t());
      }
    };
    const int64_t round_tiles = images * tiles;
    if (!split) {
      run_tasks(round_tiles + band_tasks, [&](int64_t t, int64_t slot) {
        if (t >= round_tiles) {  // the next round's copies
          copy_band(n1, t - round_tiles);
          return;
        }
        const int64_t p0 = t % tiles * rows, len = std::min(rows, P - p0);
        at::Tensor cols = col[slot].narrow(0, 0, len);
        kern.im2col(g, in[t / tiles], p0, p0, p0 + len, cols.mutable_data_ptr<T>());
        const at::Tensor tile = out_tile[slot].narrow(0, 0, len);
        for (int64_t grp = 0; grp < G; ++grp) multiply(cols, tile, grp * Cog, (grp + 1) * Cog);
        store(t, tile, 0, Cout);
      });
    } else {
      // The columns of every tile, then the products by blocks of output channels.
      run_tasks(round_tiles, [&](int64_t t, int64_t) {
        const int64_t p0 = t % tiles * rows, len = std::min(rows, P - p0);
        kern.im2col(g, in[t / tiles], p0, p0, p0 + len, col[t].mutable_data_ptr<T>());
      });
      run_tasks(round_tiles * column_blocks + band_tasks, [&](int64_t u, int64_t) {
        if (u >= round_tiles * column_blocks) {
          copy_band(n1, u - round_tiles * column_blocks);
          return;
        }
        const int64_t t = u / column_blocks, b = u % column_blocks, p0 = t % tiles * rows;
        const int64_t len = std::min(rows, P - p0), grp = b / blocks_per_group;
        const int64_t c0 = grp * Cog + b % blocks_per_group * kColumnBlock;
        const int64_t c1 = std::min((grp + 1) * Cog, c0 + kColumnBlock);
        const at::Tensor tile = out_tile[t].narrow(0, 0, len);
        multiply(col[t].narrow(0, 0, len), tile, c0, c1);
        store(t, tile, c0, c1);
      });
    }
    if (!by_bands) fill_images(n1, next_end);
  }
  return out;
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_impl(
    const Args& a, const at::Tensor& grad_out, const at::Tensor& input, const at::Tensor& offset,
    const std::optional<at::Tensor>& mask, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    std::array<bool, 5> want) {
  const Geometry& g = a.g;
  const auto acc = c10::CppTypeToScalarType<T>::value;
  const int64_t N = a.batch, C = g.channels, K = g.taps(), KC = g.col_width(), P = g.pixels();
  const int64_t HW = g.height * g.width, G = g.groups, Cout = a.out_channels, Cog = Cout / G, KCg = KC / G;
  const int64_t dg = g.deformable_groups;
  const bool need_gx = want[0], need_goff = want[1], need_gmask = want[2] && mask.has_value();
  const bool need_gw = want[3], need_gb = want[4] && bias.has_value();
  const bool need_gcol = need_gx || need_goff || need_gmask;
  const bool need_xcl = need_gw || need_goff || need_gmask;

  auto none = [&] { return at::empty({0}, input.options()); };
  auto contiguous_like = [](const at::Tensor& t) {
    return at::empty(t.sizes(), t.options().memory_format(at::MemoryFormat::Contiguous));
  };
  at::Tensor grad_input = need_gx ? contiguous_like(input) : none();
  at::Tensor grad_offset = need_goff ? contiguous_like(offset) : none();
  at::Tensor grad_mask = need_gmask ? contiguous_like(*mask) : none();
  if (N == 0) {
    return {grad_input, grad_offset, grad_mask, need_gw ? at::zeros_like(weight) : none(),
            need_gb ? at::zeros_like(*bias) : none()};
  }
  TORCH_CHECK_VALUE(grad_out.dim() == 4 && grad_out.size(0) == N && grad_out.size(1) == Cout &&
                        grad_out.size(2) == g.out_h && grad_out.size(3) == g.out_w,
                    "grad_output: expected shape (", N, ", ", Cout, ", ", g.out_h, ", ", g.out_w, "), got ",
                    grad_out.sizes());

  Workspace ws;
  const KernelTable<T>& kern = table<T>();
  const at::Tensor wmat = tap_major_weight(weight, K, kern, ws);
  const bool direct = input.scalar_type() == acc;  // grad offset / mask written in place
  const int64_t plan_bytes = dg * K * sizeof(ScatterPlan<T>);
  // Tiles run in rounds: phase 1 handles each tile of the round (grad columns, grad offset / mask,
  // scatter plans; columns and the tile's part of grad weight); phase 2 scatters the round's grad
  // columns into grad x by channel blocks and sums the parts of grad weight, in tile order, by
  // blocks of output channels. A round's buffers hold
  // all its tiles, so a round of 8 tiles means 2 synchronisations per 8 tiles.
  const int64_t round_tiles = round_tiles_setting();
  const int64_t row_bytes = (need_gw ? KC * sizeof(T) : 0) + (need_gcol ? KC * sizeof(T) + plan_bytes : 0);
  const int64_t fixed = 2 * (HW + 1) * C * sizeof(T) + (Cout + 3 * dg * K) * P * sizeof(T) +
                        (round_tiles + 2) * Cout * KCg * sizeof(T);
  const int64_t rows = tile_rows(P, KC * sizeof(T), round_tiles * std::max<int64_t>(row_bytes, 1), fixed);
  const int64_t tiles = (P + rows - 1) / rows;
  // Images of fewer tiles than a round holds (small feature maps) share rounds, so that a round's tiles
  // keep the threads busy (with one tile per image, one thread waited for the other through phase 1:
  // ~40% of a (2,256,7,7) backward spinning); their extra buffers come from what the budget leaves.
  const int64_t copy_bytes = (HW + 1) * C * sizeof(T);
  const int64_t image_bytes =
      (need_xcl ? copy_bytes : 0) + (need_gx ? copy_bytes : 0) + (Cout + 3 * dg * K) * P * sizeof(T);
  const int64_t spare = get_workspace_budget() - fixed - round_tiles * rows * std::max<int64_t>(row_bytes, 1);
  const int64_t per_round = images_per_round(N, tiles, round_tiles, spare, image_bytes);
  const int64_t round = std::min(per_round * tiles, round_tiles);

  at::Tensor x_cl, gx_cl, col, gcol, plans, gw_acc, gw_part;
  if (need_xcl) {
    x_cl = ws.empty({per_round, HW + 1, C}, acc);
    x_cl.select(1, HW).zero_();
  }
  if (need_gx) gx_cl = ws.empty({per_round, HW + 1, C}, acc);
  if (need_gw) {
    col = ws.empty({round * rows, KC}, acc);
    gw_acc = ws.empty({Cout, KCg}, acc);
    gw_acc.zero_();
    gw_part = ws.empty({round, Cout, KCg}, acc);
  }
  if (need_gcol) {
    gcol = ws.empty({round, rows, KC}, acc);
    plans = ws.empty({round, rows * plan_bytes}, at::kByte);
  }
  std::vector<double> gb_acc(need_gb ? Cout : 0, 0.0);
  std::vector<at::Tensor> off_stage(per_round), mask_stage(per_round), go_stage(per_round);
  at::Tensor goff_stage, gmask_stage;
  if (!direct && need_goff) goff_stage = ws.empty({per_round, 2 * dg * K, g.out_h, g.out_w}, acc);
  if (!direct && need_gmask) gmask_stage = ws.empty({per_round, dg * K, g.out_h, g.out_w}, acc);
  // Phase-2 work units, fixed whatever the thread count: channel blocks of the scatter (>= 16
  // channels, a vector's worth) and blocks of 16 output channels of the grad-weight GEMM.
  const int64_t cblock = std::max<int64_t>(16, (C / (2 * at::get_num_threads()) + 15) / 16 * 16);
  const int64_t n_cblocks = need_gx ? (C + cblock - 1) / cblock : 0;
  const int64_t oblock = 16, n_oblocks = need_gw ? (Cout + oblock - 1) / oblock : 0;

  for (int64_t n0 = 0; n0 < N; n0 += per_round) {
    const int64_t images = std::min(per_round, N - n0);
    std::vector<ImageInputs<T>> in(images);
    std::vector<const T*> go_ptr(images);
    std::vector<at::Tensor> go_n(images);
    std::vector<T*> goff_ptr(images, nullptr), gmask_ptr(images, nullptr);
    for (int64_t j = 0; j < images; ++j) {
      const int64_t n = n0 + j;
      if (need_xcl) fill_channels_last(x_cl[j], input[n], kern);
      if (need_gx) gx_cl[j].zero_();
      in[j] = ImageInputs<T>{need_xcl ? x_cl[j].const_data_ptr<T>() : nullptr, staged<T>(offset[n], off_stage[j], ws),
                             mask ? staged<T>((*mask)[n], mask_stage[j], ws) : nullptr};
      go_ptr[j] = staged<T>(grad_out[n], go_stage[j], ws);
      go_n[j] = at::from_blob(const_cast<T*>(go_ptr[j]), {Cout, P}, at::TensorOptions().dtype(acc));
      if (need_goff) goff_ptr[j] = direct ? grad_offset[n].mutable_data_ptr<T>() : goff_stage[j].mutable_data_ptr<T>();
      if (need_gmask) gmask_ptr[j] = direct ? grad_mask[n].mutable_data_ptr<T>() : gmask_stage[j].mutable_data_ptr<T>();
    }

    // The group's tiles, image by image, in rounds; unit u is tile u % tiles of image u / tiles.
    const int64_t units = images * tiles;
    for (int64_t u0 = 0; u0 < units; u0 += round) {
      const int64_t count = std::min(round, units - u0);
      // Images whose first tile is in this round also sum their grad bias, by blocks of output channels
      // (one fewer pool wake-up), image by image.
      const int64_t j_first = (u0 + tiles - 1) / tiles, j_end = (u0 + count + tiles - 1) / tiles;
      const int64_t bias_tasks = need_gb && j_first < j_end ? (Cout + oblock - 1) / oblock : 0;
      run_tasks(count + bias_tasks, [&](int64_t s, int64_t) {
        if (s >= count) {
          for (int64_t o = (s - count) * oblock; o < std::min(Cout, (s - count + 1) * oblock); ++o) {
            for (int64_t j = j_first; j < j_end; ++j) {
              double sum = 0;
              for (int64_t p = 0; p < P; ++p) sum += static_cast<double>(go_ptr[j][o * P + p]);
              gb_acc[o] += sum;
            }
          }
          return;
        }
        const int64_t j = (u0 + s) / tiles, p0 = (u0 + s) % tiles * rows, len = std::min(rows, P - p0);
        if (need_gw) {  // this tile's grad weight, while its columns are in cache
          at::Tensor cols = col.narrow(0, s * rows, len);
          kern.im2col(g, in[j], p0, p0, p0 + len, cols.mutable_data_ptr<T>());
          for (int64_t grp = 0; grp < G; ++grp) {
            at::Tensor dst = gw_part[s].narrow(0, grp * Cog, Cog);
            matmul(kern, dst, go_n[j].narrow(0, grp * Cog, Cog).narrow(1, p0, len), cols.narrow(1, grp * KCg, KCg));
          }
        }
        if (!need_gcol) return;
        at::Tensor gcols = gcol[s].narrow(0, 0, len);
        for (int64_t grp = 0; grp < G; ++grp) {
          at::Tensor dst = gcols.narrow(1, grp * KCg, KCg);
          matmul(kern, dst, go_n[j].narrow(0, grp * Cog, Cog).narrow(1, p0, len).t(), wmat.narrow(0, grp * Cog, Cog));
        }
        kern.grad_coords(g, in[j], gcols.const_data_ptr<T>(), p0, p0, p0 + len, goff_ptr[j], gmask_ptr[j],
                         reinterpret_cast<ScatterPlan<T>*>(plans[s].mutable_data_ptr<uint8_t>()));
      });
      // The images this round's tiles belong to: [u0 / tiles, (u0 + count - 1) / tiles].
      const int64_t j_lo = u0 / tiles, j_count = (u0 + count - 1) / tiles - j_lo + 1;
      run_tasks(n_cblocks * j_count + n_oblocks, [&](int64_t task, int64_t) {
        if (task < n_cblocks * j_count) {  // grad x of one image, channels [cb, ce), its tiles in order
          const int64_t j = j_lo + task / n_cblocks, cb = task % n_cblocks * cblock, ce = std::min(C, cb + cblock);
          for (int64_t s = 0; s < count; ++s) {
            if ((u0 + s) / tiles != j) continue;
            const int64_t len = std::min(rows, P - (u0 + s) % tiles * rows);
            kern.scatter_grad_x(g, reinterpret_cast<const ScatterPlan<T>*>(plans[s].const_data_ptr<uint8_t>()),
                                gcol[s].const_data_ptr<T>(), len, cb, ce, gx_cl[j].mutable_data_ptr<T>());
          }
          return;
        }
        // grad weight rows [o0, o0 + oblock) += the round's per-tile parts, in tile order
        const int64_t o0 = (task - n_cblocks * j_count) * oblock, olen = std::min(oblock, Cout - o0);
        at::Tensor dst = gw_acc.narrow(0, o0, olen);
        for (int64_t s = 0; s < count; ++s) dst.add_(gw_part[s].narrow(0, o0, olen));
      });
    }
    for (int64_t j = 0; j < images; ++j) {
      const int64_t n = n0 + j;
      if (need_gx) store_channels_first(grad_input[n], gx_cl[j], kern);
      if (!direct && need_goff) grad_offset[n].copy_(goff_stage[j]);
      if (!direct && need_gmask) grad_mask[n].copy_(gmask_stage[j]);
    }
  }

  at::Tensor grad_weight = none(), grad_bias = none();
  if (need_gw) {
    grad_weight = gw_acc.view({Cout, K, KCg / K}).transpose(1, 2).reshape(weight.sizes()).to(weight.scalar_type())
                      .contiguous();
  }
  if (need_gb) {
    grad_bias = at::empty({Cout}, at::TensorOptions().dtype(at::kDouble));
    std::copy(gb_acc.begin(), gb_acc.end(), grad_bias.mutable_data_ptr<double>());
    grad_bias = grad_bias.to(bias->scalar_type());
  }
  return {grad_input, grad_offset, grad_mask, grad_weight, grad_bias};
}

at::Tensor deform_conv2d_cpu(const at::Tensor& input, const at::Tensor& offset, const std::optional<at::Tensor>& mask,
                             const at::Tensor& weight, const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                             int64_t deformable_groups) {
  const Args a = check_args(input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups);
  if (input.scalar_type() == at::kDouble) return forward_impl<double>(a, input, offset, mask, weight, bias);
  return forward_impl<float>(a, input, offset, mask, weight, bias);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset,
    const std::optional<at::Tensor>& mask, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    int64_t deformable_groups, std::array<bool, 5> output_mask) {
  const Args a = check_args(input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups);
  TORCH_CHECK_TYPE(grad_output.scalar_type() == input.scalar_type(), "grad_output: expected dtype ",
                   input.scalar_type(), ", got ", grad_output.scalar_type());
  if (input.scalar_type() == at::kDouble) {
    return backward_impl<double>(a, grad_output, input, offset, mask, weight, bias, output_mask);
  }
  return backward_impl<float>(a, grad_output, input, offset, mask, weight, bias, output_mask);
}

}  // namespace

const KernelSet& kernels() {
  static const KernelSet& set = pick_kernels();
  return set;
}

}  // namespace cpu

const char* kernel_isa() { return cpu::kernels().isa; }

const char* kernel_gemm() { return cpu::kernels().f32.gemm != nullptr && cpu::use_own_gemm() ? "own" : "blas"; }

int64_t forward_tile_rows(int64_t n, int64_t c, int64_t h, int64_t w, int64_t c_out, int64_t kernel, int64_t stride,
                          int64_t padding, int64_t dilation, int64_t groups, int64_t deformable_groups) {
  TORCH_CHECK_VALUE(n > 0 && c > 0 && h > 0 && w > 0 && c_out > 0 && kernel > 0 && stride > 0 && padding >= 0 &&
                        dilation > 0 && groups > 0 && deformable_groups > 0 && c % groups == 0 &&
                        c_out % groups == 0 && c % deformable_groups == 0,
                    "forward_tile_rows: expected positive sizes (padding >= 0) and channels divisible by the groups");
  cpu::Args a;
  a.batch = n;
  a.out_channels = c_out;
  cpu::Geometry& g = a.g;
  g.channels = c;
  g.height = h;
  g.width = w;
  g.kernel_h = g.kernel_w = kernel;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = padding;
  g.dil_h = g.dil_w = dilation;
  g.out_h = conv_out_size(h, kernel, stride, padding, dilation);
  g.out_w = conv_out_size(w, kernel, stride, padding, dilation);
  TORCH_CHECK_VALUE(g.out_h > 0 && g.out_w > 0, "forward_tile_rows: the output would be empty");
  g.groups = groups;
  g.deformable_groups = deformable_groups;
  return cpu::forward_tile_rows(a, sizeof(float));
}

std::vector<double> gemm_seconds(int64_t M, int64_t N, int64_t K, const std::string& which, int64_t repeats) {
  TORCH_CHECK_VALUE(M > 0 && N > 0 && K > 0, "gemm_seconds: expected M, N, K > 0, got ", M, ", ", N, ", ", K);
  TORCH_CHECK_VALUE(repeats > 0, "gemm_seconds: expected repeats > 0, got ", repeats);
  TORCH_CHECK_VALUE(which == "own" || which == "blas", "gemm_seconds: expected which 'own' or 'blas', got '", which,
                    "'");
  const auto& kern = cpu::kernels().f32;
  TORCH_CHECK_VALUE(which == "blas" || kern.gemm != nullptr, "gemm_seconds: the '", cpu::kernels().isa,
                    "' kernel set in use has no own GEMM (it is an AVX-512 one)");
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(0);  // leaves the global RNG alone
  const at::Tensor a = at::randn({M, K}, generator), b = at::randn({K, N}, generator);
  at::Tensor c = at::empty({M, N});
  // One thread, as inside the kernel's tasks: MKL's own setting, and the pool of any other BLAS (restored
  // however the timing ends; with ATen's native pool, whose size is set once, the restore only warns).
  cpu::SingleThreadBlas one;
  struct RestoreThreads {
    int threads = at::get_num_threads();
    ~RestoreThreads() { at::set_num_threads(threads); }
  } restore;
  at::set_num_threads(1);
  auto run = [&] {
    if (which == "own") {
      kern.gemm(M, N, K, a.const_data_ptr<float>(), K, 1, b.const_data_ptr<float>(), N, c.mutable_data_ptr<float>(), N);
    } else {
      at::mm_out(c, a, b);
    }
  };
  run();  // warm-up: caches, the BLAS's first-call setup
  std::vector<double> seconds;
  for (int64_t i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return seconds;
}

}  // namespace mx_dcn

TORCH_LIBRARY_IMPL(mx_dcn, CPU, m) {
  m.impl("deform_conv2d", &mx_dcn::cpu::deform_conv2d_cpu);
  m.impl("deform_conv2d_backward", &mx_dcn::cpu::deform_conv2d_backward_cpu);
}
