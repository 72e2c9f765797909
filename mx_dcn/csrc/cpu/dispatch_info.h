// What the CPU kernel dispatches to on this machine, for `mx-dcn bench` and the tests (defined in
// deform_conv_cpu.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mx_dcn {

// The sampling kernels' instruction set: "base", "avx2" or "avx512".
const char* kernel_isa();
// Who runs the float32 matrix products: "own" (the avx512 set's GEMM) or "blas".
const char* kernel_gemm();
// Rows per tile of a float32 forward of this problem (square kernel, stride, padding and dilation), under
// the current workspace budget: the M of its matrix products.
int64_t forward_tile_rows(int64_t n, int64_t c, int64_t h, int64_t w, int64_t c_out, int64_t kernel, int64_t stride,
                          int64_t padding, int64_t dilation, int64_t groups, int64_t deformable_groups);
// Seconds of each of `repeats` calls (after a warm-up) of C = A B, float32, A (M, K) and B (K, N)
// random and contiguous, on the calling thread, by the own GEMM ("own") or the BLAS ("blas"), as the
// kernel's tasks call them: the benchmark's --gemm table.
std::vector<double> gemm_seconds(int64_t M, int64_t N, int64_t K, const std::string& which, int64_t repeats);

}  // namespace mx_dcn
