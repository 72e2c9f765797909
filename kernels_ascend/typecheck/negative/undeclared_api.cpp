// Negative case of ci/ascendc_check.sh: an API the real headers do not declare (a fused
// multiply-add that exists in neither AscendC nor the CPU model).
// expect: 'MulAddScalar' was not declared in this scope|'MulAddScalar' is not a member of 'AscendC'
#include "scaffold.h"

extern "C" __global__ __aicore__ void undeclared_api(GM_ADDR x) {
  Scaffold s(x);
#ifdef MXDCN_FIXED
  Axpy<float, float>(s.f, s.f, 2.0f, 64, 1, s.unary);
#else
  MulAddScalar<float>(s.f, s.f, 2.0f, 64, 1, s.unary);
#endif
}
