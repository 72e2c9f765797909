// The CPU sampling kernels of mx_dcn: framework-free loops on raw pointers, compiled once per
// instruction set (sampling_{base,avx2,avx512}.cpp include kernels_impl.inc) and picked at run time,
// so one wheel is fast on every x86-64 machine. The ATen driver (deform_conv_cpu.cpp) chunks the
// work, runs these in at::parallel_for and does the matrix products with the set's `gemm` where it
// has one (float32 in the avx512 set, gemm_avx512.cpp), else with at::mm (the BLAS torch links).
//
// Layouts (one image at a time):
//   x_cl       (H*W + 1, C): channels-last copy of the image; the extra last row is zeros and is
//              where out-of-image corners point, so the blend loop needs no branch and never
//              multiplies a real pixel by a zero weight (0 * inf would be NaN).
//   offset     (dg*K*2, P) and mask (dg*K, P), P = Ho*Wo, K = kh*kw.
//   col        (rows, K*C): one row per output pixel; column of (tap k, channel c) is
//              (c / Cg) * K*Cg + k*Cg + c % Cg, Cg = C / groups, so each conv group's block is a
//              contiguous (rows, K*Cg) matrix for the GEMM with the permuted weight (Cout, K, Cg).
//   grad_x_cl  (H*W + 1, C): the last row absorbs out-of-image corners and is discarded.
#pragma once

#include <cstdint>

// The avx2 and avx512 sets (and the own GEMM) exist on x86-64 only; elsewhere (an aarch64 host of an
// Atlas server, say) their entry points return the base set, which the compiler vectorises for that target.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))  // the guarded code is GCC/Clang's
#define MX_DCN_X86 1
#else
#define MX_DCN_X86 0
#endif

namespace mx_dcn {
namespace cpu {

struct Geometry {
  int64_t channels, height, width, out_h, out_w, kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, deformable_groups;

  int64_t taps() const { return kernel_h * kernel_w; }
  int64_t pixels() const { return out_h * out_w; }
  int64_t col_width() const { return taps() * channels; }
};

// Where one sample's gradient goes: four rows of grad_x_cl (the zero row for corners outside the
// image) and their weights mask * w[k]. index[0] < 0 marks a sample outside the image (skipped).
template <typename T>
struct ScatterPlan {
  int32_t index[4];
  T weight[4];
};

template <typename T>
struct ImageInputs {
  const T* x_cl;
  const T* offset;
  const T* mask;  // nullptr: DCNv1 (mask of ones)
};

template <typename T>
struct KernelTable {
  // Columns of output pixels [p_begin, p_end); the row of pixel p is col + (p - p_first) * K*C.
  void (*im2col)(const Geometry& g, const ImageInputs<T>& in, int64_t p_first, int64_t p_begin,
                 int64_t p_end, T* col);
  // From grad columns (same layout as col) of pixels [p_begin, p_end): the gradient of offset
  // (dg*K*2, P) and mask (dg*K, P) at those pixels (each may be nullptr: not wanted), and the
  // scatter plans of those pixels, plans[((p - p_first) * dg + d) * K + k].
  void (*grad_coords)(const Geometry& g, const ImageInputs<T>& in, const T* grad_col, int64_t p_first,
                      int64_t p_begin, int64_t p_end, T* grad_offset, T* grad_mask, ScatterPlan<T>* plans);
  // Adds the grad columns of `rows` pixels (plans and grad_col from row 0) into grad_x_cl for the
  // channels [c_begin, c_end) only, visiting samples in one fixed order: threads owning disjoint
  // channel ranges never write one element, and every element sums its terms in the same order
  // whatever the thread count.
  void (*scatter_grad_x)(const Geometry& g, const ScatterPlan<T>* plans, const T* grad_col, int64_t rows,
                         int64_t c_begin, int64_t c_end, T* grad_x_cl);
  // dst[a * dst_ld + b] = src[b * src_ld + a] (+ add[a] unless add is nullptr) for a in [a_begin,
  // a_end), b in [b_begin, b_end): an image plane (C, H*W) to channels-last rows (H*W, C) and back, a
  // GEMM tile (rows, C_out) into the output plus the bias.
  void (*transpose)(const T* src, int64_t src_ld, T* dst, int64_t dst_ld, int64_t a_begin, int64_t a_end,
                    int64_t b_begin, int64_t b_end, const T* add);
  // Rows [r_begin, r_end) (in the order c * taps + k) of one conv group's forward GEMM weight
  // wt (taps * cg, cog), wt[k * cg + c][o] = w[o][c][k], from w (cog, cg, taps) contiguous.
  void (*gemm_weight)(const T* w, int64_t cog, int64_t cg, int64_t taps, int64_t r_begin, int64_t r_end, T* wt);
  // C (M x N, rows ldc apart) = A B, with A's element (i, k) at A[i * a_rs + k * a_cs] and B row-major
  // (rows ldb apart); each element summed in k order. nullptr where the set has none.
  void (*gemm)(int64_t M, int64_t N, int64_t K, const T* A, int64_t a_rs, int64_t a_cs, const T* B, int64_t ldb,
               T* C, int64_t ldc);
};

struct KernelSet {
  const char* isa;
  KernelTable<float> f32;
  KernelTable<double> f64;
};

// The best set this CPU supports (chosen once).
const KernelSet& kernels();

// One per instruction set (defined in sampling_<isa>.cpp).
const KernelSet& kernels_base();
const KernelSet& kernels_avx2();
const KernelSet& kernels_avx512();

// KernelTable::gemm of the avx512 set for float32 (gemm_avx512.cpp).
void gemm_f32_avx512(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_cs, const float* B,
                     int64_t ldb, float* C, int64_t ldc);

}  // namespace cpu
}  // namespace mx_dcn
