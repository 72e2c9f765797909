// Negative case of ci/ascendc_check.sh: 300 repeats. repeatTime is an 8-bit field in the real API
// (uint8_t), so 300 becomes 44; the CPU model takes 32 bits and stops only when it runs.
// expect: changes value from '300' to '44'
#include "scaffold.h"

extern "C" __global__ __aicore__ void repeat_overflow(GM_ADDR x) {
  Scaffold s(x);
#ifdef MXDCN_FIXED
  Axpy<float, float>(s.f, s.f, 2.0f, 64, 255, s.unary);
#else
  Axpy<float, float>(s.f, s.f, 2.0f, 64, 300, s.unary);
#endif
}
