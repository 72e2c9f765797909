// Shared setup of the negative cases of ci/ascendc_check.sh: a pipe, UB tensors of a few element
// types and a GM tensor. Each case makes one call, wrong unless MXDCN_FIXED is defined.
#pragma once
#include "kernel_operator.h"

using namespace AscendC;

struct Scaffold {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  LocalTensor<float> f;
  LocalTensor<int16_t> i16;
  LocalTensor<int8_t> i8;
  GlobalTensor<float> g;
  UnaryRepeatParams unary{1, 1, 8, 8};

  __aicore__ inline explicit Scaffold(GM_ADDR x) {
    pipe.InitBuffer(buf, 8192);
    f = buf.Get<float>();
    i16 = buf.Get<int16_t>();
    i8 = buf.Get<int8_t>();
    g.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(x), 64);
  }
};
