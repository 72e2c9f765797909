// Negative case of ci/ascendc_check.sh: the repeat form of ReduceSum needs the source repeat
// stride after the repeat count.
// expect: no matching function for call to 'ReduceSum<float>\(
#include "scaffold.h"

extern "C" __global__ __aicore__ void reduce_sum_args(GM_ADDR x) {
  Scaffold s(x);
#ifdef MXDCN_FIXED
  ReduceSum<float>(s.f, s.f, s.f, 64, 1, 8);
#else
  ReduceSum<float>(s.f, s.f, s.f, 64, 1);
#endif
}
