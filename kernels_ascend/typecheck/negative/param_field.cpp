// Negative case of ci/ascendc_check.sh: DataCopyParams has blockCount, blockLen (in 32-byte blocks)
// and the strides/gaps; there is no blockSize.
// expect: has no member named 'blockSize'
#include "scaffold.h"

extern "C" __global__ __aicore__ void param_field(GM_ADDR x) {
  Scaffold s(x);
  DataCopyParams cp;
  cp.blockCount = 1;
#ifdef MXDCN_FIXED
  cp.blockLen = 8;
#else
  cp.blockSize = 8;
#endif
  DataCopy(s.f, s.g, cp);
}
