// Negative case of ci/ascendc_check.sh: BinaryRepeatParams takes six strides (dst, src0, src1 block
// strides, then their repeat strides); five do not match any constructor.
// expect: no matching function for call to 'AscendC::BinaryRepeatParams::BinaryRepeatParams\(int, int, int, int, int\)'
#include "scaffold.h"

extern "C" __global__ __aicore__ void binary_params_arity(GM_ADDR x) {
  Scaffold s(x);
#ifdef MXDCN_FIXED
  Mul<float>(s.f, s.f, s.f, 64, 1, BinaryRepeatParams(1, 1, 1, 8, 8, 8));
#else
  Mul<float>(s.f, s.f, s.f, 64, 1, BinaryRepeatParams(1, 1, 1, 8, 8));
#endif
}
