// Deliberately broken (and one correct) toy kernels, to show that the model rejects what the
// hardware rejects. mxdcn_sim_selftest(i) runs toy i; 0 means it ran cleanly, 1 that the model
// stopped it (message in err).
#include <cstdio>
#include <string>

#include "kernel_operator.h"

using namespace AscendC;

namespace {

constexpr uint32_t kN = 256;   // floats in the toy GM buffers
float g_in[kN];
float g_out[kN];

enum Toy {
  kCorrect = 0,          // the same operations within the rules: must run
  kMisalignedCopy,       // DataCopy of 9 floats (36 bytes)
  kMisalignedAddress,    // DataCopy into a UB address 4 bytes past a block boundary
  kOverCapacity,         // 200 KiB of UB
  kRepeat256,            // a vector instruction with repeatTimes 256
  kBlockStride,          // a DataCopy gap of 65536 blocks
  kAtomicOutside,        // a plain DataCopy into an accumulated buffer
  kAtomicLeftOn,         // SetAtomicAdd without SetAtomicNone
  kUbOverrun,            // a vector op running past the end of its buffer
  kOverlap,              // two blocks writing the same output elements
  kQueueLeak,            // AllocTensor without FreeTensor
  kToyCount
};

void ToyKernel(int toy) {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  GlobalTensor<float> in, out;
  in.SetGlobalBuffer(g_in, kN);
  out.SetGlobalBuffer(g_out, kN);
  if (toy == kOverCapacity) {
    pipe.InitBuffer(buf, 200 * 1024);
    return;
  }
  pipe.InitBuffer(buf, 64 * 1024);
  LocalTensor<float> local = buf.Get<float>();
  const uint32_t block = GetBlockIdx();
  switch (toy) {
    case kCorrect: {
      DataCopy(local, in[block * 64], 64);
      Muls<float>(local, local, 2.0f, 64, 1, UnaryRepeatParams(1, 1, 8, 8));
      SetAtomicAdd<float>();
      DataCopy(out, local, 64);
      SetAtomicNone();
      return;
    }
    case kMisalignedCopy: DataCopy(local, in, 9); return;
    case kMisalignedAddress: DataCopy(local[1], in, 8); return;
    case kRepeat256: {
      uint32_t repeats = 256;
      Duplicate<float>(local, 0.0f, 64, repeats, 1, 8);
      return;
    }
    case kBlockStride: {
      DataCopyParams cp;
      cp.blockCount = 2;
      cp.blockLen = 1;
      cp.srcStride = 65536;
      DataCopy(local, in, cp);
      return;
    }
    case kAtomicOutside: DataCopy(local, in, 64); DataCopy(out, local, 64); return;
    case kAtomicLeftOn: DataCopy(local, in, 64); SetAtomicAdd<float>(); DataCopy(out, local, 64); return;
    case kUbOverrun: Duplicate<float>(local[16 * 1024 - 64], 0.0f, 64, 2, 1, 8); return;
    case kOverlap: DataCopy(local, in, 64); DataCopy(out, local, 64); return;
    case kQueueLeak: {
      TQue<TPosition::VECIN, 1> que;
      pipe.InitBuffer(que, 1, 256);
      LocalTensor<float> t = que.AllocTensor<float>();
      DataCopy(t, in, 64);
      return;
    }
    default: return;
  }
}

}  // namespace

extern "C" int mxdcn_sim_selftest_count() { return kToyCount; }

extern "C" int mxdcn_sim_selftest(int toy, char* err, int errLen) {
  using AscendC::sim::GmMode;
  AscendC::sim::GmRegistry& gm = AscendC::sim::GmRegistry::instance();
  for (uint32_t i = 0; i < kN; ++i) g_in[i] = float(i);
  gm.Add(g_in, sizeof(g_in), "toy_in", GmMode::kInput);
  const bool accumulate = toy == kCorrect || toy == kAtomicOutside || toy == kAtomicLeftOn;
  gm.Add(g_out, sizeof(g_out), "toy_out", accumulate ? GmMode::kAccumulate : GmMode::kOutput);
  int status = 0;
  try {
    AscendC::sim::RunKernel(toy == kCorrect || toy == kOverlap ? 2 : 1, [&] { ToyKernel(toy); });
  } catch (const std::exception& e) {
    std::snprintf(err, size_t(errLen), "%s", e.what());
    status = 1;
  }
  gm.Clear();
  return status;
}
