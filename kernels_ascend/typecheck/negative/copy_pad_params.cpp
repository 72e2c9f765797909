// Negative case of ci/ascendc_check.sh: DataCopyPad pairs DataCopyExtParams with
// DataCopyPadExtParams<T> (or DataCopyParams with DataCopyPadParams); mixing the two families
// matches no overload.
// expect: no matching function for call to 'DataCopyPad\(
#include "scaffold.h"

extern "C" __global__ __aicore__ void copy_pad_params(GM_ADDR x) {
  Scaffold s(x);
#ifdef MXDCN_FIXED
  DataCopyExtParams cp;
#else
  DataCopyParams cp;
#endif
  cp.blockCount = 1;
  cp.blockLen = 8;
  DataCopyPad(s.f, s.g, cp, DataCopyPadExtParams<float>());
}
