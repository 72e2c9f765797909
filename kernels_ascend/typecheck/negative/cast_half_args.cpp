// Negative case of ci/ascendc_check.sh: Cast to half written with the round mode after the count
// (the count form is Cast(dst, src, roundMode, count), include/basic_api/kernel_operator_vec_vconv_intf.h).
// expect: no matching function for call to 'Cast
#include "scaffold.h"

extern "C" __global__ __aicore__ void cast_half_args(GM_ADDR x) {
  Scaffold s(x);
  LocalTensor<half> h = s.buf.Get<half>()[2048];
#ifdef MXDCN_FIXED
  Cast(h, s.f, RoundMode::CAST_RINT, 64u);
#else
  Cast(h, s.f, 64u, RoundMode::CAST_RINT);
#endif
}
