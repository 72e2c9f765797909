// Rounding, index generation, broadcast and per-block reduction in the AscendC CPU model:
//   Cast(dst, src, roundMode, count) -- count form (kernel_operator_vec_vconv_intf.h). The model
//     implements float -> float, whose Atlas A2 round modes are CAST_RINT / FLOOR / CEIL / ROUND /
//     TRUNC (Cast.md, the Atlas A2 table; CAST_NONE is not among them), and float -> half / bfloat16_t
//     with CAST_RINT (and, for half, CAST_NONE, which means CAST_RINT when precision is lost: Cast.md,
//     RoundMode); the other modes of those are not modelled. Table 10: 64 float lanes per cycle.
//   CreateVecIndex(dst, first, count) -- dst[i] = first + i (kernel_operator_vec_createvecindex_intf.h,
//     CreateVecIndex.md); float / int32_t; table 13: 64 lanes per cycle.
//   Brcb(dst, src, repeatTime, BrcbRepeatParams(dstBlkStride, dstRepStride)) -- repeat r reads 8
//     consecutive elements src[8r .. 8r+7] and fills 32-byte block j of its destination (block
//     r * dstRepStride + j * dstBlkStride) with src[8r + j] (Brcb.md; the strides are uint16_t in
//     kernel_struct_brcb.h; repeatTime <= 255); table 13: 8 sources / 64 outputs per cycle.
//   ReduceDataBlock<SUM>(dst, src, mask, repeatTime, dstRepStride, srcBlkStride, srcRepStride) --
//     repeat r sums each of its 8 source blocks (block j at r * srcRepStride + j * srcBlkStride) over
//     the mask's active lanes into dst[r * dstRepStride * 8 + j]; a block without an active lane
//     leaves its output unchanged on Atlas A2 (ReduceDataBlock.md); strides in [0, 65535]; the sum of
//     a block is a binary tree (the model adds in that order). Table 11: 64 float lanes per cycle.
#ifndef MXDCN_SIM_VECTOR_CONVERT_H
#define MXDCN_SIM_VECTOR_CONVERT_H

#include <cmath>

namespace AscendC {

enum class RoundMode : uint8_t { CAST_NONE = 0, CAST_RINT, CAST_FLOOR, CAST_CEIL, CAST_ROUND, CAST_TRUNC, CAST_ODD };
enum class ReduceType { NONE = -1, SUM = 0, MAX, MIN };   // impl/utils/common_types.h

struct BrcbRepeatParams {
  BrcbRepeatParams() {}
  BrcbRepeatParams(uint32_t dstBlk, uint32_t dstRep) : dstBlkStride(dstBlk), dstRepStride(dstRep) {}
  uint32_t dstBlkStride = 1;   // uint16_t on the device; 32 bits here so an overflow reaches the check
  uint32_t dstRepStride = 8;
};

namespace sim {
// float -> half / bfloat16_t, count form: different element sizes, so no overlap at all.
template <typename T>
void NarrowCount(const char* what, const LocalTensor<T>& dst, const LocalTensor<float>& src, const RoundMode& mode,
                 uint32_t count) {
  if (mode != RoundMode::CAST_RINT && !(std::is_same<T, half>::value && mode == RoundMode::CAST_NONE)) {
    Fail(std::string(what) + ": float -> " + (std::is_same<T, half>::value ? "half" : "bfloat16_t") +
         " is modelled with CAST_RINT" + (std::is_same<T, half>::value ? " (or CAST_NONE)" : "") + " only, not round mode " +
         Str(uint64_t(mode)));
  }
  Span d, s;
  T* pd = SpanPtr(dst, count, what, d);
  const float* ps = SpanPtr(src, count, what, s);
  CheckSpanOverlap(what, d, s, false, "src");
  pipes().Begin(Pipe::V);
  SpanTouch(s, false, what);
  SpanTouch(d, true, what);
  for (uint32_t i = 0; i < count; ++i) pd[i] = T(ps[i]);
  CountDone(count, s.bytes, cost::vec_cycles_per_repeat);
}
}  // namespace sim

template <typename T, typename U>
void Cast(const LocalTensor<T>& dst, const LocalTensor<U>& src, const RoundMode& roundMode, const uint32_t count) {
  static_assert(std::is_same<U, float>::value &&
                    (std::is_same<T, float>::value || std::is_same<T, half>::value || std::is_same<T, bfloat16_t>::value),
                "the model implements Cast from float to float, half and bfloat16_t");
  const char* what = "Cast(count)";
  if constexpr (!std::is_same<T, float>::value) {
    sim::NarrowCount(what, dst, src, roundMode, count);
    return;
  } else {
  float (*round)(float) = nullptr;
  switch (roundMode) {
    case RoundMode::CAST_RINT: round = std::nearbyint; break;   // ties to even (default FP environment)
    case RoundMode::CAST_FLOOR: round = std::floor; break;
    case RoundMode::CAST_CEIL: round = std::ceil; break;
    case RoundMode::CAST_ROUND: round = std::round; break;
    case RoundMode::CAST_TRUNC: round = std::trunc; break;
    default:
      sim::Fail(std::string(what) + ": float -> float supports CAST_RINT/FLOOR/CEIL/ROUND/TRUNC on Atlas A2 "
                "(Cast.md), not round mode " + sim::Str(uint64_t(roundMode)));
  }
  sim::UnaryCount(what, dst, src, count, [&](float v) { return round(v); });
  }
}

template <typename T>
void CreateVecIndex(LocalTensor<T> dst, const T& firstValue, uint32_t count) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, int32_t>::value,
                "the model's CreateVecIndex takes float or int32_t");
  const char* what = "CreateVecIndex(count)";
  sim::Span d;
  T* pd = sim::SpanPtr(dst, count, what, d);
  sim::pipes().Begin(sim::Pipe::V);
  sim::SpanTouch(d, true, what);
  for (uint32_t i = 0; i < count; ++i) pd[i] = firstValue + T(i);
  sim::CountDone(count, d.bytes, sim::cost::vec_cycles_per_repeat);
}

template <typename T>
void Brcb(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint8_t repeatTime,
          const BrcbRepeatParams& repeatParams) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 2, "Brcb takes 16- or 32-bit elements on Atlas A2 (Brcb.md)");
  const char* what = "Brcb";
  const char* decl = "uint16_t in BrcbRepeatParams, include/basic_api/kernel_struct_brcb.h";
  sim::CheckField(what, "dstBlkStride", repeatParams.dstBlkStride, sim::kU16, decl);
  sim::CheckField(what, "dstRepStride", repeatParams.dstRepStride, sim::kU16, decl);
  const uint32_t repeats = repeatTime, perBlock = sim::kBlock / sizeof(T);
  if (repeats == 0) return;
  sim::Span s;
  const T* ps = sim::SpanPtr(src, uint64_t(repeats) * 8, what, s);
  dst.CheckAligned(what);
  const uint64_t lastBlock = uint64_t(repeats - 1) * repeatParams.dstRepStride + 7ull * repeatParams.dstBlkStride;
  T* pd = dst.Ptr(0, (lastBlock + 1) * perBlock, what);
  const sim::VecOperand od{dst.Addr(), repeatParams.dstBlkStride, repeatParams.dstRepStride, 1};
  for (uint32_t r = 0; r < repeats; ++r) {
    for (uint32_t j = 0; j < 8; ++j) {
      const uint32_t lo = dst.Addr() + uint32_t((uint64_t(r) * od.rep + uint64_t(j) * od.blk) * sim::kBlock);
      if (lo < s.addr + s.bytes && s.addr < lo + sim::kBlock) {
        sim::Fail(std::string(what) + ": the destination overlaps the source (通用地址重叠约束)");
      }
    }
  }
  sim::pipes().Begin(sim::Pipe::V);
  sim::SpanTouch(s, false, what);
  for (uint32_t r = 0; r < repeats; ++r) {
    for (uint32_t j = 0; j < 8; ++j) {
      const uint64_t block = uint64_t(r) * repeatParams.dstRepStride + uint64_t(j) * repeatParams.dstBlkStride;
      const uint32_t lo = dst.Addr() + uint32_t(block * sim::kBlock);
      sim::pipes().Ub(sim::Pipe::V, true, lo, lo + sim::kBlock, what);
      for (uint32_t e = 0; e < perBlock; ++e) pd[block * perBlock + e] = ps[8 * r + j];
    }
  }
  sim::CountDone(uint64_t(repeats) * 8 * perBlock, uint64_t(repeats) * sim::kRepeatBytes, sim::cost::vec_cycles_per_repeat);
}

template <ReduceType reduceType, typename T, typename U, bool isSetMask = true>
void ReduceDataBlock(const LocalTensor<T>& dst, const LocalTensor<U>& src, const int32_t mask, const int32_t repeatTime,
                     const int32_t dstRepStride, const int32_t srcBlkStride, const int32_t srcRepStride) {
  static_assert(reduceType == ReduceType::SUM && std::is_same<T, float>::value && std::is_same<U, float>::value,
                "the model implements ReduceDataBlock<ReduceType::SUM> on float");
  const char* what = "ReduceDataBlock";
  if (mask < 0 || repeatTime < 0 || dstRepStride < 0 || srcBlkStride < 0 || srcRepStride < 0) {
    sim::Fail(std::string(what) + ": negative argument");
  }
  const char* decl = "ReduceDataBlock.md: [0, 65535]";
  sim::CheckRepeat(what, uint64_t(mask), uint32_t(repeatTime), sim::kRepeatBytes / sizeof(U));
  sim::CheckField(what, "dstRepStride", uint32_t(dstRepStride), sim::kU16, decl);
  sim::CheckField(what, "srcBlkStride", uint32_t(srcBlkStride), sim::kU16, decl);
  sim::CheckField(what, "srcRepStride", uint32_t(srcRepStride), sim::kU16, decl);
  const uint32_t repeats = uint32_t(repeatTime), perBlock = sim::kBlock / sizeof(U);
  if (repeats == 0) return;
  const U* ps = sim::VecPtr(src, what, uint64_t(mask), repeats, uint32_t(srcBlkStride), uint32_t(srcRepStride));
  dst.CheckAligned(what);
  T* pd = dst.Ptr(0, uint64_t(repeats - 1) * uint32_t(dstRepStride) * 8 + 8, what);
  const sim::VecOperand os = sim::Operand(src, uint64_t(mask), uint32_t(srcBlkStride), uint32_t(srcRepStride));
  const sim::VecOperand od{dst.Addr(), 1, uint32_t(dstRepStride), 1};
  sim::CheckOverlap(what, od, os, repeats, "src");
  sim::pipes().Begin(sim::Pipe::V);
  sim::VecTouch(os, repeats, false, what);
  sim::VecTouch(od, repeats, true, what);
  for (uint32_t r = 0; r < repeats; ++r) {
    for (uint32_t j = 0; j < 8; ++j) {
      const uint64_t first = uint64_t(j) * perBlock;
      if (first >= uint64_t(mask)) continue;   // no active lane: the output keeps its value
      U lane[8] = {};
      for (uint32_t e = 0; e < perBlock && first + e < uint64_t(mask); ++e) {
        lane[e] = ps[sim::VecIndex<U>(r, first + e, uint32_t(srcBlkStride), uint32_t(srcRepStride))];
      }
      for (uint32_t width = perBlock / 2; width >= 1; width /= 2) {   // binary tree
        for (uint32_t e = 0; e < width; ++e) lane[e] = lane[e] + lane[e + width];
      }
      pd[uint64_t(r) * uint32_t(dstRepStride) * 8 + j] = T(lane[0]);
    }
  }
  sim::CountDone(uint64_t(mask) * repeats, uint64_t(repeats) * sim::kRepeatBytes, sim::cost::vec_cycles_per_repeat);
}

}  // namespace AscendC

#endif  // MXDCN_SIM_VECTOR_CONVERT_H
