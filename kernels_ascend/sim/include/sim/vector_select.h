// Compare and select in the AscendC CPU model (count forms; include/basic_api/kernel_operator_vec_cmpsel_intf.h,
// docs/zh/api/SIMD-API/基础API/Memory矢量计算/比较与选择/Compares.md and Select.md):
//   Compares(dst, src, scalar, cmpMode, count): bit i of dst (uint8_t, little-endian bit order) is
//     src[i] <cmpMode> scalar. Atlas A2: src float/half (every CMPMODE) or int32_t (EQ only); count
//     elements must fill whole 256-byte repeats ("count个元素所占空间256字节对齐"). A comparison with
//     NaN is false (IEEE), except NE.
//   Select(dst, selMask, src0, scalar | src1, selMode, count): dst[i] = bit i of selMask ? src0[i] :
//     src1 (or the scalar); mode VSEL_TENSOR_SCALAR_MODE with a scalar, VSEL_TENSOR_TENSOR_MODE with a
//     tensor, both consuming selMask bits continuously (mode 0 reuses one repeat's bits: not modelled).
//     Atlas A2: dst half/float.
//   GatherMask(dst, src0, src1Pattern, reduceMode = false, mask, GatherMaskParams, rsvdCnt): normal mode
//     with a user pattern (GatherMask.md): repeat r reads 256 bytes of src0 (blocks src0BlockStride
//     apart, repeats src0RepeatStride blocks apart) and keeps element e where bit e of the pattern at
//     src1 + r * src1RepeatStride blocks is set; the kept elements are packed into dst in order;
//     rsvdCnt = how many. repeatTimes <= 255 (高维切分.md). rsvdCnt comes from a register the vector
//     instruction sets (impl/basic_api/dav_c220/kernel_operator_vec_gather_mask_impl.h:
//     GetRsvdCnt after vreducev2), so the scalar unit waits for the vector pipe: counted as a V -> S wait.
// Cost: one repeat per 256 bytes of src, 64 float lanes per cycle (Vector指令理论性能汇总.md, table 9);
// GatherMask 32 float lanes per cycle (vec_gathermask_cycles_per_repeat, same table).
#ifndef MXDCN_SIM_VECTOR_SELECT_H
#define MXDCN_SIM_VECTOR_SELECT_H

namespace AscendC {

enum class CMPMODE : uint8_t { LT = 0, GT, EQ, LE, GE, NE };   // impl/basic_api/utils/kernel_utils_mode.h
enum class SELMODE : uint8_t { VSEL_CMPMASK_SPR = 0, VSEL_TENSOR_SCALAR_MODE, VSEL_TENSOR_TENSOR_MODE };

namespace sim {

template <typename T>
bool CompareOne(T a, T b, CMPMODE mode) {
  switch (mode) {
    case CMPMODE::LT: return a < b;
    case CMPMODE::GT: return a > b;
    case CMPMODE::EQ: return a == b;
    case CMPMODE::LE: return a <= b;
    case CMPMODE::GE: return a >= b;
    case CMPMODE::NE: return a != b;
  }
  return false;
}

inline bool Bit(const uint8_t* bits, uint64_t i) { return (bits[i / 8] >> (i % 8)) & 1u; }

template <typename T, typename F>
void SelectCount(const char* what, const LocalTensor<T>& dst, const LocalTensor<uint8_t>& selMask,
                 const LocalTensor<T>& src0, const LocalTensor<T>* src1, uint32_t count, F other) {
  static_assert(std::is_same<T, float>::value, "the model's Select takes float (Atlas A2: half/float)");
  Span d, m, a, b{0, 0};
  T* pd = SpanPtr(dst, count, what, d);
  const uint8_t* bits = SpanPtr(selMask, (uint64_t(count) + 7) / 8, what, m);
  const T* pa = SpanPtr(src0, count, what, a);
  if (src1 != nullptr) SpanPtr(*src1, count, what, b);
  CheckSpanOverlap(what, d, a, true, "src0");
  CheckSpanOverlap(what, d, m, false, "selMask");
  if (src1 != nullptr) CheckSpanOverlap(what, d, b, true, "src1");
  pipes().Begin(Pipe::V);
  SpanTouch(m, false, what);
  SpanTouch(a, false, what);
  if (src1 != nullptr) SpanTouch(b, false, what);
  SpanTouch(d, true, what);
  for (uint32_t i = 0; i < count; ++i) pd[i] = Bit(bits, i) ? pa[i] : other(i);
  CountDone(count, d.bytes, cost::vec_cycles_per_repeat);
}

}  // namespace sim

template <typename T, typename U>
void Compares(const LocalTensor<U>& dst, const LocalTensor<T>& src0, const T src1Scalar, CMPMODE cmpMode,
              uint32_t count) {
  static_assert(std::is_same<U, uint8_t>::value, "Compares writes uint8_t bits (Compares.md, Atlas A2)");
  static_assert(std::is_same<T, float>::value || std::is_same<T, int32_t>::value,
                "the model's Compares takes float or int32_t sources");
  const char* what = "Compares(count)";
  if (std::is_same<T, int32_t>::value && cmpMode != CMPMODE::EQ) {
    sim::Fail(std::string(what) + ": int32_t sources support CMPMODE::EQ only on Atlas A2 (Compares.md)");
  }
  if ((uint64_t(count) * sizeof(T)) % sim::kRepeatBytes != 0) {
    sim::Fail(std::string(what) + ": count " + sim::Str(count) + " elements are not whole 256-byte repeats "
              "(count个元素所占空间256字节对齐, Compares.md)");
  }
  sim::Span d, s;
  uint8_t* bits = sim::SpanPtr(dst, uint64_t(count) / 8, what, d);
  const T* ps = sim::SpanPtr(src0, count, what, s);
  sim::CheckSpanOverlap(what, d, s, false, "src");
  sim::pipes().Begin(sim::Pipe::V);
  sim::SpanTouch(s, false, what);
  sim::SpanTouch(d, true, what);
  for (uint32_t i = 0; i < count / 8; ++i) {
    uint8_t byte = 0;
    for (uint32_t j = 0; j < 8; ++j) byte |= uint8_t(sim::CompareOne(ps[8 * i + j], src1Scalar, cmpMode)) << j;
    bits[i] = byte;
  }
  sim::CountDone(count, s.bytes, sim::cost::vec_cycles_per_repeat);
}

template <typename T, typename U>
void Select(const LocalTensor<T>& dst, const LocalTensor<U>& selMask, const LocalTensor<T>& src0, T src1,
            SELMODE selMode, uint32_t count) {
  static_assert(std::is_same<U, uint8_t>::value, "the model's Select takes a uint8_t selMask");
  if (selMode != SELMODE::VSEL_TENSOR_SCALAR_MODE) {
    sim::Fail("Select(count) with a scalar src1 needs SELMODE::VSEL_TENSOR_SCALAR_MODE (Select.md, mode 1)");
  }
  sim::SelectCount<T>("Select(count)", dst, selMask, src0, nullptr, count, [&](uint32_t) { return src1; });
}

template <typename T, typename U>
void Select(const LocalTensor<T>& dst, const LocalTensor<U>& selMask, const LocalTensor<T>& src0,
            const LocalTensor<T>& src1, SELMODE selMode, uint32_t count) {
  static_assert(std::is_same<U, uint8_t>::value, "the model's Select takes a uint8_t selMask");
  if (selMode != SELMODE::VSEL_TENSOR_TENSOR_MODE) {
    sim::Fail("Select(count) of two tensors: the model supports SELMODE::VSEL_TENSOR_TENSOR_MODE (mode 2) only");
  }
  sim::Span b;
  const T* pb = sim::SpanPtr(src1, count, "Select(count)", b);
  sim::SelectCount("Select(count)", dst, selMask, src0, &src1, count, [&](uint32_t i) { return pb[i]; });
}

struct GatherMaskParams {
  GatherMaskParams() {}
  GatherMaskParams(uint32_t src0Blk, uint32_t repeats, uint32_t src0Rep, uint32_t src1Rep)
      : src0BlockStride(src0Blk), repeatTimes(repeats), src0RepeatStride(src0Rep), src1RepeatStride(src1Rep) {}
  // uint8_t / uint16_t / uint16_t / uint8_t on the device (include/basic_api/kernel_struct_gather.h);
  // 32 bits here so an overflow reaches the check.
  uint32_t src0BlockStride = 1, repeatTimes = 0, src0RepeatStride = 8, src1RepeatStride = 8;
};

template <typename T, typename U>
void GatherMask(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<U>& src1Pattern,
                const bool reduceMode, const uint32_t mask, const GatherMaskParams& p, uint64_t& rsvdCnt) {
  static_assert(std::is_same<T, float>::value && std::is_same<U, uint32_t>::value,
                "the model's GatherMask takes float data and a uint32_t pattern (GatherMask.md: float / uint32_t)");
  const char* what = "GatherMask";
  const char* decl = "include/basic_api/kernel_struct_gather.h";
  (void)mask;
  if (reduceMode) sim::Fail(std::string(what) + ": counter mode (reduceMode = true) is not modelled");
  sim::CheckRepeat(what, 64, p.repeatTimes, 64);
  sim::CheckField(what, "src0BlockStride", p.src0BlockStride, sim::kU8, decl);
  sim::CheckField(what, "src0RepeatStride", p.src0RepeatStride, sim::kU16, decl);
  sim::CheckField(what, "src1RepeatStride", p.src1RepeatStride, sim::kU8, decl);
  const uint32_t repeats = p.repeatTimes;
  rsvdCnt = 0;
  if (repeats == 0) return;
  const T* ps = sim::VecPtr(src0, what, 64, repeats, p.src0BlockStride, p.src0RepeatStride);
  src1Pattern.CheckAligned(what);
  const uint64_t patternWords = (uint64_t(repeats - 1) * p.src1RepeatStride * sim::kBlock) / 4 + 2;
  const uint32_t* bits = src1Pattern.Ptr(0, patternWords, what);
  const sim::VecOperand os = sim::Operand(src0, 64, p.src0BlockStride, p.src0RepeatStride);
  uint64_t kept = 0;
  for (uint32_t r = 0; r < repeats; ++r) {
    const uint32_t* word = bits + uint64_t(r) * p.src1RepeatStride * sim::kBlock / 4;
    for (uint32_t e = 0; e < 64; ++e) kept += (word[e / 32] >> (e % 32)) & 1u;
  }
  T* pd = dst.Ptr(0, kept, what);
  dst.CheckAligned(what);
  const sim::Span d{dst.Addr(), uint32_t(kept * sizeof(T))};
  const sim::Span s0{src0.Addr(), uint32_t((sim::VecExtent<T>(64, repeats, p.src0BlockStride, p.src0RepeatStride)) * sizeof(T))};
  if (!(d.addr == s0.addr)) sim::CheckSpanOverlap(what, d, s0, false, "src0");
  sim::PipeModel& pm = sim::pipes();
  pm.Begin(sim::Pipe::V);
  sim::VecTouch(os, repeats, false, what);
  pm.Ub(sim::Pipe::V, false, src1Pattern.Addr(), src1Pattern.Addr() + uint32_t(patternWords * 4), what);
  sim::SpanTouch(d, true, what);
  std::vector<T> out;
  out.reserve(kept);
  for (uint32_t r = 0; r < repeats; ++r) {
    const uint32_t* word = bits + uint64_t(r) * p.src1RepeatStride * sim::kBlock / 4;
    for (uint32_t e = 0; e < 64; ++e) {
      if ((word[e / 32] >> (e % 32)) & 1u) out.push_back(ps[sim::VecIndex<T>(r, e, p.src0BlockStride, p.src0RepeatStride)]);
    }
  }
  for (uint64_t i = 0; i < kept; ++i) pd[i] = out[i];
  sim::CountDone(uint64_t(64) * repeats, uint64_t(repeats) * sim::kRepeatBytes, sim::cost::vec_gathermask_cycles_per_repeat);
  rsvdCnt = kept;
  pm.ScalarWaitsForVector();
}

}  // namespace AscendC

#endif  // MXDCN_SIM_VECTOR_SELECT_H
