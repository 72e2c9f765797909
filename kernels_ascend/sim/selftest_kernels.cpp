// One small kernel per rule of the model, each in two variants: broken (the model must stop it with
// the rule's message) and fixed (the same work within the rules: it must run). Run from
// sim/tests/test_model.cpp and tests/test_ascend_sim.py through mxdcn_sim_selftest(toy, fixed, ...).
#include <cstdio>
#include <string>

#include "kernel_operator.h"

using namespace AscendC;

namespace {

constexpr uint32_t kN = 256;   // floats in the toy GM buffers
float g_in[kN];
float g_out[kN];

template <HardEvent evt>
void Sync() {
  const event_t id = static_cast<event_t>(GetTPipePtr()->FetchEventID(evt));
  SetFlag<evt>(id);
  WaitFlag<evt>(id);
}

// The toy's world: a TPipe, GM views of the two buffers and a 64 KiB scratch TBuf.
struct World {
  TPipe pipe;
  TBuf<TPosition::VECCALC> buf;
  GlobalTensor<float> in, out;
  LocalTensor<float> local;
  explicit World(uint32_t ubBytes = 64 * 1024) {
    in.SetGlobalBuffer(g_in, kN);
    out.SetGlobalBuffer(g_out, kN);
    pipe.InitBuffer(buf, ubBytes);
    local = buf.Get<float>();
  }
};

const UnaryRepeatParams kUnary(1, 1, 8, 8);

void CopyLength(bool fixed) {
  World w;
  DataCopy(w.local, w.in, fixed ? 8 : 9);
}
void UbAddress(bool fixed) {
  World w;
  DataCopy(fixed ? w.local : w.local[1], w.in, 8);
}
// 190 KiB would fit the physical 192 KiB, but not what AscendC leaves a kernel (192 KiB - 8.25 KiB).
void UbCapacity(bool fixed) { World w(fixed ? 180 * 1024 : 190 * 1024); }
void Repeat256(bool fixed) {
  World w;
  uint32_t repeats = fixed ? 255 : 256;
  Duplicate<float>(w.local, 0.0f, 64, repeats, 1, 8);
}
void CopyGap(bool fixed) {
  World w;
  DataCopy(w.local, w.in, DataCopyParams(2, 1, fixed ? 3 : 65536, 0));
}
void AtomicOutside(bool fixed) {
  World w;
  DataCopy(w.local, w.in, 64);
  Sync<HardEvent::MTE2_MTE3>();
  if (fixed) SetAtomicAdd<float>();
  DataCopy(w.out, w.local, 64);
  if (fixed) SetAtomicNone();
}
void AtomicLeftOn(bool fixed) {
  World w;
  DataCopy(w.local, w.in, 64);
  Sync<HardEvent::MTE2_MTE3>();
  SetAtomicAdd<float>();
  DataCopy(w.out, w.local, 64);
  if (fixed) SetAtomicNone();
}
void UbOverrun(bool fixed) {
  World w;
  Duplicate<float>(w.local[16 * 1024 - 64], 0.0f, 64, fixed ? 1 : 2, 1, 8);
}
void BlocksOverlap(bool fixed) {   // two blocks
  World w;
  DataCopy(w.local, w.in, 64);
  Sync<HardEvent::MTE2_MTE3>();
  DataCopy(w.out[fixed ? GetBlockIdx() * 64 : 0], w.local, 64);
}
void QueueLeak(bool fixed) {
  World w;
  TQue<TPosition::VECIN, 1> que;
  w.pipe.InitBuffer(que, 1, 256);
  LocalTensor<float> t = que.AllocTensor<float>();
  DataCopy(t, w.in, 64);
  if (!fixed) return;
  que.EnQue(t);
  t = que.DeQue<float>();
  que.FreeTensor(t);
}
void Mte2ThenV(bool fixed) {
  World w;
  DataCopy(w.local, w.in, 64);
  if (fixed) Sync<HardEvent::MTE2_V>();
  Muls<float>(w.local[64], w.local, 2.0f, 64, 1, kUnary);
}
void VThenMte3(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.0f, 64, 1, 1, 8);
  if (fixed) Sync<HardEvent::V_MTE3>();
  DataCopy(w.out[GetBlockIdx() * 64], w.local, 64);
}
void ScalarReadsVectorResult(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.0f, 64, 1, 1, 8);
  if (fixed) Sync<HardEvent::V_S>();
  volatile float v = w.local.GetValue(3);
  (void)v;
}
void WrongEventId(bool fixed) {
  World w;
  DataCopy(w.local, w.in, 64);
  SetFlag<HardEvent::MTE2_V>(0);
  WaitFlag<HardEvent::MTE2_V>(fixed ? 0 : 1);
  Muls<float>(w.local[64], w.local, 2.0f, 64, 1, kUnary);
}
void UseAfterFree(bool fixed) {
  World w;
  TQue<TPosition::VECIN, 1> que;
  w.pipe.InitBuffer(que, 1, 256);
  LocalTensor<float> t = que.AllocTensor<float>();
  DataCopy(t, w.in, 64);
  que.EnQue(t);
  t = que.DeQue<float>();
  if (fixed) Muls<float>(t, t, 2.0f, 64, 1, kUnary);
  que.FreeTensor(t);
  if (!fixed) Muls<float>(t, t, 2.0f, 64, 1, kUnary);
}
void PartialOverlap(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.0f, 64, 3, 1, 8);
  Muls<float>(fixed ? w.local : w.local[8], w.local, 2.0f, 64, 2, kUnary);
}
void BlockStride256(bool fixed) {
  World w;
  TBuf<TPosition::VECCALC> sources;
  w.pipe.InitBuffer(sources, 1024);
  LocalTensor<float> s = sources.Get<float>();
  Duplicate<float>(s, 1.0f, 64, 1, 1, 8);
  const uint32_t stride = fixed ? 255 : 256;
  Mul<float>(w.local, s, s, 64, 1, BinaryRepeatParams(stride, 1, 1, 8, 8, 8));
}
void GmPastTensorEnd(bool fixed) {
  World w;
  GlobalTensor<float> first, second;   // two tensors over the halves of one registered buffer
  first.SetGlobalBuffer(g_in, kN / 2);
  second.SetGlobalBuffer(g_in + kN / 2, kN / 2);
  DataCopy(w.local, first[fixed ? 64 : 96], 64);
}
void UnpairedSetFlag(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.0f, 64, 1, 1, 8);
  SetFlag<HardEvent::V_S>(0);
  if (fixed) WaitFlag<HardEvent::V_S>(0);
}
void Mte2OverwritesWhatVReads(bool fixed) {
  World w;
  DataCopy(w.local, w.in, 64);
  Sync<HardEvent::MTE2_V>();
  Muls<float>(w.local[64], w.local, 2.0f, 64, 1, kUnary);
  if (fixed) Sync<HardEvent::V_MTE2>();
  DataCopy(w.local, w.in[64], 64);
}
void Mte2OverlappingCopies(bool fixed) {
  World w;
  DataCopy(w.local, w.in, 64);
  if (fixed) PipeBarrier<PIPE_MTE2>();
  DataCopy(w.local, w.in[64], 64);
}
void ScalarWriteThenMte3(bool fixed) {
  World w;
  for (uint32_t i = 0; i < 8; ++i) w.local.SetValue(i, float(i));
  if (fixed) Sync<HardEvent::S_MTE3>();
  DataCopy(w.out[GetBlockIdx() * 64], w.local, 8);
}
void VectorOverwritesWhatScalarReads(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.0f, 64, 1, 1, 8);
  Sync<HardEvent::V_S>();
  const float v = w.local.GetValue(0);
  if (fixed) Sync<HardEvent::S_V>();
  Duplicate<float>(w.local, v, 64, 1, 1, 8);
}
void DstBlockStride0(bool fixed) {
  World w;
  Duplicate<float>(w.local, 0.0f, 64, 1, fixed ? 1 : 0, 8);
}
void Mte3OverlappingCopies(bool fixed) {
  World w;
  DataCopy(w.local, w.in, 64);
  Sync<HardEvent::MTE2_MTE3>();
  DataCopy(w.out[GetBlockIdx() * 64], w.local, 64);
  if (fixed) PipeBarrier<PIPE_MTE3>();
  DataCopy(w.out[GetBlockIdx() * 64], w.local, 64);
}

// Count-form compares cover whole 256-byte repeats (Compares.md).
void ComparesCount(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.0f, 64);
  LocalTensor<uint8_t> bits = w.local[1024].ReinterpretCast<uint8_t>();
  Compares(bits, w.local, 0.5f, CMPMODE::GT, fixed ? 64u : 60u);
}
// float -> float Cast takes the round modes Atlas A2 lists (Cast.md): not CAST_NONE.
void CastRoundMode(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.5f, 64);
  Cast(w.local[64], w.local, fixed ? RoundMode::CAST_FLOOR : RoundMode::CAST_NONE, 64u);
}
// A count-form destination overlaps its source 100% or not at all.
void CountPartialOverlap(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.0f, 128);
  Add(fixed ? w.local : w.local[8], w.local, w.local, 64);
}
// Select with a scalar src1 is mode 1 (Select.md).
void SelectMode(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.0f, 64);
  LocalTensor<uint8_t> bits = w.local[1024].ReinterpretCast<uint8_t>();
  Compares(bits, w.local, 0.5f, CMPMODE::GT, 64u);
  Select(w.local[64], bits, w.local, 0.0f,
         fixed ? SELMODE::VSEL_TENSOR_SCALAR_MODE : SELMODE::VSEL_TENSOR_TENSOR_MODE, 64u);
}
// Brcb's destination blocks never overlap its source.
void BrcbOverlap(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.0f, 64);
  Brcb(fixed ? w.local[64] : w.local, w.local, 1, BrcbRepeatParams(1, 8));
}
// ReduceDataBlock's strides are at most 65535 blocks (ReduceDataBlock.md).
void ReduceBlockStride(bool fixed) {
  World w;
  Duplicate<float>(w.local, 1.0f, 64);
  ReduceDataBlock<ReduceType::SUM, float, float>(w.local[64], w.local, 64, 1, 1, 1, fixed ? 8 : 65536);
}

struct Toy {
  const char* name;
  const char* expect;     // a phrase the broken variant's message contains
  uint32_t blocks;
  bool accumulate;        // toy_out is accumulated (atomic adds) rather than a plain output
  void (*run)(bool fixed);
};

const Toy kToys[] = {
    {"copy_length", "length 36 bytes is not a multiple of 32 bytes", 1, false, CopyLength},
    {"ub_address", "is not 32-byte aligned", 1, false, UbAddress},
    {"ub_capacity", "UB capacity exceeded", 1, false, UbCapacity},
    {"repeat_256", "repeatTimes 256 exceeds 255", 1, false, Repeat256},
    {"copy_gap_65536", "block stride (gap) 65536 exceeds the 16-bit field", 1, false, CopyGap},
    {"atomic_outside", "must sit between SetAtomicAdd and SetAtomicNone", 1, true, AtomicOutside},
    {"atomic_left_on", "SetAtomicAdd still active", 1, true, AtomicLeftOn},
    {"ub_overrun", "leaves its buffer", 1, false, UbOverrun},
    {"blocks_overlap", "the work split overlaps", 2, false, BlocksOverlap},
    {"queue_leak", "FreeTensor missing", 1, false, QueueLeak},
    {"mte2_then_v", "missing SetFlag<HardEvent::MTE2_V>", 1, false, Mte2ThenV},
    {"v_then_mte3", "missing SetFlag<HardEvent::V_MTE3>", 1, false, VThenMte3},
    {"s_reads_v_result", "missing SetFlag<HardEvent::V_S>", 1, false, ScalarReadsVectorResult},
    {"wrong_event_id", "WaitFlag<HardEvent::MTE2_V>(1) without a SetFlag<HardEvent::MTE2_V>(1)", 1, false, WrongEventId},
    {"use_after_free", "use after free", 1, false, UseAfterFree},
    {"partial_overlap", "overlap partially", 1, false, PartialOverlap},
    {"block_stride_256", "dstBlkStride 256 exceeds its field (at most 255", 1, false, BlockStride256},
    {"gm_past_tensor_end", "past the tensor's end", 1, false, GmPastTensorEnd},
    {"unpaired_setflag", "SetFlag<HardEvent::V_S>(0) never waited for", 1, false, UnpairedSetFlag},
    {"mte2_overwrites_v_input", "missing SetFlag<HardEvent::V_MTE2>", 1, false, Mte2OverwritesWhatVReads},
    {"mte2_overlapping_copies", "missing PipeBarrier<PIPE_MTE2>", 1, false, Mte2OverlappingCopies},
    {"s_write_then_mte3", "missing SetFlag<HardEvent::S_MTE3>", 1, false, ScalarWriteThenMte3},
    {"v_overwrites_s_input", "missing SetFlag<HardEvent::S_V>", 1, false, VectorOverwritesWhatScalarReads},
    {"dst_block_stride_0", "dstBlockStride 0 is undefined behaviour", 1, false, DstBlockStride0},
    {"mte3_overlapping_copies", "missing PipeBarrier<PIPE_MTE3>", 1, false, Mte3OverlappingCopies},
    {"compares_whole_repeats", "are not whole 256-byte repeats", 1, false, ComparesCount},
    {"cast_round_mode", "not round mode 0", 1, false, CastRoundMode},
    {"count_partial_overlap", "overlap partially", 1, false, CountPartialOverlap},
    {"select_scalar_mode", "needs SELMODE::VSEL_TENSOR_SCALAR_MODE", 1, false, SelectMode},
    {"brcb_overlap", "the destination overlaps the source", 1, false, BrcbOverlap},
    {"reduce_block_stride", "srcRepStride 65536 exceeds its field", 1, false, ReduceBlockStride},
};
constexpr int kToyCount = int(sizeof(kToys) / sizeof(kToys[0]));

}  // namespace

extern "C" {

int mxdcn_sim_selftest_count() { return kToyCount; }
const char* mxdcn_sim_selftest_name(int toy) { return toy >= 0 && toy < kToyCount ? kToys[toy].name : nullptr; }
const char* mxdcn_sim_selftest_expect(int toy) { return toy >= 0 && toy < kToyCount ? kToys[toy].expect : nullptr; }

// Runs the broken (fixed == 0) or fixed variant of toy `toy`: 0 when it ran cleanly, 1 when the
// model stopped it (message in err), 2 for an unknown toy.
int mxdcn_sim_selftest(int toy, int fixed, char* err, int errLen) {
  if (toy < 0 || toy >= kToyCount) return 2;
  using AscendC::sim::GmMode;
  AscendC::sim::GmRegistry& gm = AscendC::sim::GmRegistry::instance();
  for (uint32_t i = 0; i < kN; ++i) {
    g_in[i] = float(i);
    g_out[i] = 0.0f;
  }
  gm.Add(g_in, sizeof(g_in), "toy_in", GmMode::kInput);
  gm.Add(g_out, sizeof(g_out), "toy_out", kToys[toy].accumulate ? GmMode::kAccumulate : GmMode::kOutput);
  int status = 0;
  try {
    AscendC::sim::RunKernel(kToys[toy].blocks, [&] { kToys[toy].run(fixed != 0); });
  } catch (const std::exception& e) {
    std::snprintf(err, size_t(errLen), "%s", e.what());
    status = 1;
  }
  gm.Clear();
  return status;
}

}  // extern "C"
