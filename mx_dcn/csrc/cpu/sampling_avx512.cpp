// The sampling kernels compiled for the avx512 instruction set (see kernels_impl.inc).
#include <cmath>
#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <cstdint>

#include "cpu/kernels.h"

#if MX_DCN_X86
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi,bmi2,f16c")

namespace {
#include "cpu/kernels_impl.inc"
}  // namespace
#endif

namespace mx_dcn {
namespace cpu {

const KernelSet& kernels_avx512() {
#if MX_DCN_X86
  static const KernelSet set = [] {
    KernelSet s{"avx512", make_table<float>(), make_table<double>()};
    s.f32.gemm = &gemm_f32_avx512;
    return s;
  }();
  return set;
#else
  return kernels_base();  // never picked: no x86 CPU to run it
#endif
}

}  // namespace cpu
}  // namespace mx_dcn
