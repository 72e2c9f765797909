// Negative case of ci/ascendc_check.sh: Duplicate of double. The vector unit has no fp64; the real
// API's static_assert (impl/basic_api/dav_c220/kernel_operator_vec_duplicate_impl.h) rejects it, the
// CPU model accepts it.
// expect: static assertion failed: Failed to check dtype in Duplicate
#include "scaffold.h"

extern "C" __global__ __aicore__ void duplicate_double(GM_ADDR x) {
  Scaffold s(x);
#ifdef MXDCN_FIXED
  Duplicate<float>(s.f, 0.0f, 64, 1, 1, 8);
#else
  LocalTensor<double> d = s.buf.Get<double>();
  Duplicate<double>(d, 0.0, 64, 1, 1, 8);
#endif
}
