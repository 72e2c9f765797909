// Negative case of ci/ascendc_check.sh: Muls on int8_t. The real API allows half, float and int16_t
// only (a static_assert in impl/basic_api/dav_c220/kernel_operator_vec_binary_scalar_impl.h); the CPU
// model of the AscendC API accepts any element type.
// expect: static assertion failed: Failed to check dtype in Muls
#include "scaffold.h"

extern "C" __global__ __aicore__ void muls_int8(GM_ADDR x) {
  Scaffold s(x);
#ifdef MXDCN_FIXED
  Muls<int16_t>(s.i16, s.i16, int16_t(2), 128, 1, s.unary);
#else
  Muls<int8_t>(s.i8, s.i8, int8_t(2), 128, 1, s.unary);
#endif
}
