// The float32 matrix product of the avx512 kernel set (KernelTable::gemm): register-blocked, 6 rows x
// 64 columns of C in 24 zmm accumulators, one FMA chain per element in k order.
//
// Why our own: on an AMD Zen 4 the BLAS torch ships (oneMKL) reached 72-93% of this loop's throughput
// on the kernel's tile products with the tile in cache, 62-71% on the (2,64,64,64,64) forward's with
// tiles coming from L3 (README, Performance; `python -m mx_dcn.bench --gemm` measures it). Its
// summation order is fixed by this code, not by a library's dispatch.
#include <cstdint>

#include "cpu/kernels.h"

#if MX_DCN_X86
#include <immintrin.h>

namespace mx_dcn {
namespace cpu {

namespace {

constexpr int kRows = 6;     // rows of C per register block
constexpr int kVectors = 4;  // 16-float vectors of C per register block row

// C[0:MR, 0:16*NV] = A[0:MR, 0:K] B[0:K, 0:16*NV], the last vector's columns limited by `last`.
template <int MR, int NV>
__attribute__((target("avx512f"))) inline void block(int64_t K, const float* __restrict A, int64_t a_rs,
                                                     int64_t a_cs, const float* __restrict B, int64_t ldb,
                                                     float* __restrict C, int64_t ldc, __mmask16 last) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < K; ++k) {
    __m512 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      b[v] = v + 1 < NV ? _mm512_loadu_ps(B + k * ldb + 16 * v) : _mm512_maskz_loadu_ps(last, B + k * ldb + 16 * v);
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * a_rs + k * a_cs]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      if (v + 1 < NV) {
        _mm512_storeu_ps(C + r * ldc + 16 * v, acc[r][v]);
      } else {
        _mm512_mask_storeu_ps(C + r * ldc + 16 * v, last, acc[r][v]);
      }
    }
  }
}

// The rows [0, M) of one column block of NV vectors.
template <int NV>
__attribute__((target("avx512f"))) void column_block(int64_t M, int64_t K, const float* A, int64_t a_rs,
                                                     int64_t a_cs, const float* B, int64_t ldb, float* C,
                                                     int64_t ldc, __mmask16 last) {
  int64_t m = 0;
  for (; m + kRows <= M; m += kRows) block<kRows, NV>(K, A + m * a_rs, a_rs, a_cs, B, ldb, C + m * ldc, ldc, last);
  const float* a = A + m * a_rs;
  float* c = C + m * ldc;
  switch (M - m) {
    case 5: block<5, NV>(K, a, a_rs, a_cs, B, ldb, c, ldc, last); break;
    case 4: block<4, NV>(K, a, a_rs, a_cs, B, ldb, c, ldc, last); break;
    case 3: block<3, NV>(K, a, a_rs, a_cs, B, ldb, c, ldc, last); break;
    case 2: block<2, NV>(K, a, a_rs, a_cs, B, ldb, c, ldc, last); break;
    case 1: block<1, NV>(K, a, a_rs, a_cs, B, ldb, c, ldc, last); break;
    default: break;
  }
}

}  // namespace

__attribute__((target("avx512f"))) void gemm_f32_avx512(int64_t M, int64_t N, int64_t K, const float* A,
                                                        int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb,
                                                        float* C, int64_t ldc) {
  // Column blocks of 64 (B's block, K x 64, is what the rows of A stream past), the last one narrower.
  for (int64_t n0 = 0; n0 < N; n0 += 16 * kVectors) {
    const int64_t width = N - n0 < 16 * kVectors ? N - n0 : 16 * kVectors;
    const int vectors = int((width + 15) / 16);
    const int tail = int(width - 16 * (vectors - 1));
    const __mmask16 last = __mmask16((1u << tail) - 1u);
    switch (vectors) {
      case 4: column_block<4>(M, K, A, a_rs, a_cs, B + n0, ldb, C + n0, ldc, last); break;
      case 3: column_block<3>(M, K, A, a_rs, a_cs, B + n0, ldb, C + n0, ldc, last); break;
      case 2: column_block<2>(M, K, A, a_rs, a_cs, B + n0, ldb, C + n0, ldc, last); break;
      default: column_block<1>(M, K, A, a_rs, a_cs, B + n0, ldb, C + n0, ldc, last); break;
    }
  }
}

}  // namespace cpu
}  // namespace mx_dcn

#endif  // MX_DCN_X86
