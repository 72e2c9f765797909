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
// Seconds of each of `repeats` calls (after a warm-up) of C = A B, float32, A (M, K) and B (K, N)
// random and contiguous, on the calling thread, by the own GEMM ("own") or the BLAS ("blas"), as the
// kernel's tasks call them: the benchmark's --gemm table.
std::vector<double> gemm_seconds(int64_t M, int64_t N, int64_t K, const std::string& which, int64_t repeats);

}  // namespace mx_dcn
