// Vector instructions of the AscendC CPU model, level-0 form: `repeatTimes` repeats of up to 256
// bytes; within a repeat the `mask` leading elements (continuous mask mode) spread over 32-byte
// blocks `blkStride` blocks apart; repeats `repStride` blocks apart
// (docs/zh/api/SIMD-API/基础API/Memory矢量计算/SIMD计算说明/高维切分.md). Rules, besides bounds,
// alignment and pipe ordering:
//   - repeatTimes <= 255 (8-bit, 高维切分.md); each stride within its field as declared:
//     BinaryRepeatParams: block and repeat strides uint8_t (include/basic_api/kernel_struct_binary.h);
//     UnaryRepeatParams: block strides uint16_t, repeat strides uint8_t (kernel_struct_unary.h);
//     Duplicate: dstBlockStride uint16_t, dstRepeatStride uint8_t (kernel_operator_vec_duplicate_intf.h);
//     ReduceSum: srcRepStride in [0, 65535] (ReduceSum.md);
//   - a destination block stride of 0 is undefined behaviour (高维切分.md);
//   - operand overlap (通用说明和约束.md, 通用地址重叠约束): within one repeat a source and the
//     destination overlap 100% or not at all; the destination of a repeat never overlaps the
//     source of a later repeat -- except dst over src1 of Add/Mul with src1RepStride or
//     dstRepStride 0.
#ifndef MXDCN_SIM_VECTOR_OPS_H
#define MXDCN_SIM_VECTOR_OPS_H

namespace AscendC {

// Fields keep 32 bits in the model so an out-of-range value reaches the check (see above for the
// device widths).
struct UnaryRepeatParams {
  UnaryRepeatParams() {}
  UnaryRepeatParams(uint32_t dstBlk, uint32_t srcBlk, uint32_t dstRep, uint32_t srcRep)
      : dstBlkStride(dstBlk), srcBlkStride(srcBlk), dstRepStride(dstRep), srcRepStride(srcRep) {}
  uint32_t dstBlkStride = 1, srcBlkStride = 1, dstRepStride = 8, srcRepStride = 8;
};

struct BinaryRepeatParams {
  BinaryRepeatParams() {}
  BinaryRepeatParams(uint32_t dstBlk, uint32_t src0Blk, uint32_t src1Blk, uint32_t dstRep, uint32_t src0Rep,
                     uint32_t src1Rep)
      : dstBlkStride(dstBlk), src0BlkStride(src0Blk), src1BlkStride(src1Blk), dstRepStride(dstRep),
        src0RepStride(src0Rep), src1RepStride(src1Rep) {}
  uint32_t dstBlkStride = 1, src0BlkStride = 1, src1BlkStride = 1;
  uint32_t dstRepStride = 8, src0RepStride = 8, src1RepStride = 8;
};

namespace sim {

void CheckRepeat(const char* what, uint64_t mask, uint32_t repeatTimes, uint32_t maskMax);
// `field` of `what` must not exceed `max`, its range on the device (declared in `decl`).
void CheckField(const char* what, const char* field, uint64_t value, uint64_t max, const char* decl);
constexpr uint32_t kU8 = 255, kU16 = 65535;
constexpr const char* kBinaryDecl = "uint8_t in BinaryRepeatParams, include/basic_api/kernel_struct_binary.h";
constexpr const char* kUnaryBlkDecl = "uint16_t in UnaryRepeatParams, include/basic_api/kernel_struct_unary.h";
constexpr const char* kUnaryRepDecl = "uint8_t in UnaryRepeatParams, include/basic_api/kernel_struct_unary.h";

// Element e (0 <= e < mask) of repeat r of an operand with the given strides -> element index.
template <typename T>
uint64_t VecIndex(uint32_t r, uint64_t e, uint32_t blkStride, uint32_t repStride) {
  const uint64_t perBlock = kBlock / sizeof(T);
  return uint64_t(r) * repStride * perBlock + (e / perBlock) * blkStride * perBlock + e % perBlock;
}

// Whether an operand's elements are one contiguous run (element (r, e) at r * mask + e), the common
// case the loops below take without index arithmetic.
template <typename T>
bool Contiguous(uint64_t mask, uint32_t blkStride, uint32_t repStride) {
  return blkStride == 1 && uint64_t(repStride) * (kBlock / sizeof(T)) == mask;
}

// The last element a level-0 operand touches + 1 (for the bounds check).
template <typename T>
uint64_t VecExtent(uint64_t mask, uint32_t repeatTimes, uint32_t blkStride, uint32_t repStride) {
  if (repeatTimes == 0 || mask == 0) return 0;
  return VecIndex<T>(repeatTimes - 1, mask - 1, blkStride, repStride) + 1;
}

// Where an operand lies: UB address, strides, blocks per repeat (all in 32-byte blocks but addr).
struct VecOperand {
  uint32_t addr, blk, rep, blocks;
};

template <typename T>
VecOperand Operand(const LocalTensor<T>& t, uint64_t mask, uint32_t blk, uint32_t rep) {
  return VecOperand{t.Addr(), blk, rep, uint32_t((mask * sizeof(T) + kBlock - 1) / kBlock)};
}

// Overlap rule between the destination and one source of an instruction of `repeats` repeats.
void CheckOverlap(const char* what, const VecOperand& dst, const VecOperand& src, uint32_t repeats, const char* srcName);
// The instruction's reads or writes of one operand, for pipe ordering.
void VecTouch(const VecOperand& op, uint32_t repeats, bool write, const char* what);

// Bounds and alignment of an operand; its first element.
template <typename T>
T* VecPtr(const LocalTensor<T>& t, const char* what, uint64_t mask, uint32_t repeatTimes, uint32_t blkStride,
          uint32_t repStride) {
  t.CheckAligned(what);
  return t.Ptr(0, VecExtent<T>(mask, repeatTimes, blkStride, repStride), what);
}

// Counters and timeline of a finished vector instruction.
inline void VecDone(uint64_t mask, uint32_t repeats, double cycles) {
  PipeModel& pm = pipes();
  pm.counters.vec_instructions += 1;
  pm.counters.vec_repeats += repeats;
  pm.counters.vec_elements += double(mask) * repeats;
  pm.End(Pipe::V, cycles);
}
inline double VecCycles(uint32_t repeats) { return cost::vec_instr_cycles + repeats * cost::vec_cycles_per_repeat; }

}  // namespace sim

template <typename T, bool isSetMask = true>
void Duplicate(const LocalTensor<T>& dst, const T& scalar, uint64_t mask, uint32_t repeatTimes, uint32_t dstBlkStride,
               uint32_t dstRepStride) {
  const char* what = "Duplicate";
  const char* decl = "include/basic_api/kernel_operator_vec_duplicate_intf.h";
  sim::CheckRepeat(what, mask, repeatTimes, sim::kRepeatBytes / sizeof(T));
  sim::CheckField(what, "dstBlockStride", dstBlkStride, sim::kU16, decl);
  sim::CheckField(what, "dstRepeatStride", dstRepStride, sim::kU8, decl);
  if (dstBlkStride == 0) sim::Fail(std::string(what) + ": dstBlockStride 0 is undefined behaviour (高维切分.md)");
  T* d = sim::VecPtr(dst, what, mask, repeatTimes, dstBlkStride, dstRepStride);
  sim::pipes().Begin(sim::Pipe::V);
  sim::VecTouch(sim::Operand(dst, mask, dstBlkStride, dstRepStride), repeatTimes, true, what);
  if (sim::Contiguous<T>(mask, dstBlkStride, dstRepStride)) {
    for (uint64_t i = 0; i < mask * repeatTimes; ++i) d[i] = scalar;
  } else {
    for (uint32_t r = 0; r < repeatTimes; ++r)
      for (uint64_t e = 0; e < mask; ++e) d[sim::VecIndex<T>(r, e, dstBlkStride, dstRepStride)] = scalar;
  }
  sim::VecDone(mask, repeatTimes, sim::VecCycles(repeatTimes));
}

namespace sim {
// dst = f(dst, src) elementwise; `readsDst` for instructions that accumulate into dst (Axpy).
template <typename T, typename F>
void Unary(const char* what, const LocalTensor<T>& dst, const LocalTensor<T>& src, uint64_t mask, uint32_t repeatTimes,
           const UnaryRepeatParams& p, bool readsDst, F f) {
  CheckRepeat(what, mask, repeatTimes, kRepeatBytes / sizeof(T));
  CheckField(what, "dstBlkStride", p.dstBlkStride, kU16, kUnaryBlkDecl);
  CheckField(what, "srcBlkStride", p.srcBlkStride, kU16, kUnaryBlkDecl);
  CheckField(what, "dstRepStride", p.dstRepStride, kU8, kUnaryRepDecl);
  CheckField(what, "srcRepStride", p.srcRepStride, kU8, kUnaryRepDecl);
  if (p.dstBlkStride == 0) Fail(std::string(what) + ": dstBlkStride 0 is undefined behaviour (高维切分.md)");
  T* d = VecPtr(dst, what, mask, repeatTimes, p.dstBlkStride, p.dstRepStride);
  const T* s = VecPtr(src, what, mask, repeatTimes, p.srcBlkStride, p.srcRepStride);
  const VecOperand od = Operand(dst, mask, p.dstBlkStride, p.dstRepStride);
  const VecOperand os = Operand(src, mask, p.srcBlkStride, p.srcRepStride);
  CheckOverlap(what, od, os, repeatTimes, "src");
  pipes().Begin(Pipe::V);
  VecTouch(os, repeatTimes, false, what);
  if (readsDst) VecTouch(od, repeatTimes, false, what);
  VecTouch(od, repeatTimes, true, what);
  if (Contiguous<T>(mask, p.dstBlkStride, p.dstRepStride) && Contiguous<T>(mask, p.srcBlkStride, p.srcRepStride)) {
    for (uint64_t i = 0; i < mask * repeatTimes; ++i) d[i] = f(d[i], s[i]);
  } else {
    for (uint32_t r = 0; r < repeatTimes; ++r)
      for (uint64_t e = 0; e < mask; ++e) {
        T& out = d[VecIndex<T>(r, e, p.dstBlkStride, p.dstRepStride)];
        out = f(out, s[VecIndex<T>(r, e, p.srcBlkStride, p.srcRepStride)]);
      }
  }
  VecDone(mask, repeatTimes, VecCycles(repeatTimes));
}

template <typename T, typename F>
void Binary(const char* what, const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
            uint64_t mask, uint32_t repeatTimes, const BinaryRepeatParams& p, F f) {
  CheckRepeat(what, mask, repeatTimes, kRepeatBytes / sizeof(T));
  CheckField(what, "dstBlkStride", p.dstBlkStride, kU8, kBinaryDecl);
  CheckField(what, "src0BlkStride", p.src0BlkStride, kU8, kBinaryDecl);
  CheckField(what, "src1BlkStride", p.src1BlkStride, kU8, kBinaryDecl);
  CheckField(what, "dstRepStride", p.dstRepStride, kU8, kBinaryDecl);
  CheckField(what, "src0RepStride", p.src0RepStride, kU8, kBinaryDecl);
  CheckField(what, "src1RepStride", p.src1RepStride, kU8, kBinaryDecl);
  if (p.dstBlkStride == 0) Fail(std::string(what) + ": dstBlkStride 0 is undefined behaviour (高维切分.md)");
  T* d = VecPtr(dst, what, mask, repeatTimes, p.dstBlkStride, p.dstRepStride);
  const T* a = VecPtr(src0, what, mask, repeatTimes, p.src0BlkStride, p.src0RepStride);
  const T* b = VecPtr(src1, what, mask, repeatTimes, p.src1BlkStride, p.src1RepStride);
  const VecOperand od = Operand(dst, mask, p.dstBlkStride, p.dstRepStride);
  const VecOperand o0 = Operand(src0, mask, p.src0BlkStride, p.src0RepStride);
  const VecOperand o1 = Operand(src1, mask, p.src1BlkStride, p.src1RepStride);
  CheckOverlap(what, od, o0, repeatTimes, "src0");
  // Add/Mul (and Sub, Max, Min) may accumulate: dst over src1 when a repeat stride of them is 0.
  if (!(p.src1RepStride == 0 || p.dstRepStride == 0)) CheckOverlap(what, od, o1, repeatTimes, "src1");
  pipes().Begin(Pipe::V);
  VecTouch(o0, repeatTimes, false, what);
  VecTouch(o1, repeatTimes, false, what);
  VecTouch(od, repeatTimes, true, what);
  if (Contiguous<T>(mask, p.dstBlkStride, p.dstRepStride) && Contiguous<T>(mask, p.src0BlkStride, p.src0RepStride) &&
      Contiguous<T>(mask, p.src1BlkStride, p.src1RepStride)) {
    for (uint64_t i = 0; i < mask * repeatTimes; ++i) d[i] = f(a[i], b[i]);
  } else {
    for (uint32_t r = 0; r < repeatTimes; ++r)
      for (uint64_t e = 0; e < mask; ++e)
        d[VecIndex<T>(r, e, p.dstBlkStride, p.dstRepStride)] =
            f(a[VecIndex<T>(r, e, p.src0BlkStride, p.src0RepStride)], b[VecIndex<T>(r, e, p.src1BlkStride, p.src1RepStride)]);
  }
  VecDone(mask, repeatTimes, VecCycles(repeatTimes));
}
}  // namespace sim

// dst = src * scalar
template <typename T, bool isSetMask = true>
void Muls(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalar, uint64_t mask, uint32_t repeatTimes,
          const UnaryRepeatParams& p) {
  sim::Unary("Muls", dst, src, mask, repeatTimes, p, false, [&](T, T s) { return s * scalar; });
}

// dst = src + scalar
template <typename T, bool isSetMask = true>
void Adds(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalar, uint64_t mask, uint32_t repeatTimes,
          const UnaryRepeatParams& p) {
  sim::Unary("Adds", dst, src, mask, repeatTimes, p, false, [&](T, T s) { return s + scalar; });
}

// dst = src * scalar + dst
template <typename T, typename U, bool isSetMask = true>
void Axpy(const LocalTensor<T>& dst, const LocalTensor<U>& src, const U& scalar, uint64_t mask, uint32_t repeatTimes,
          const UnaryRepeatParams& p) {
  static_assert(std::is_same<T, U>::value, "the model supports Axpy with one element type only");
  sim::Unary("Axpy", dst, src, mask, repeatTimes, p, true, [&](T d, T s) { return s * scalar + d; });
}

template <typename T, bool isSetMask = true>
void Mul(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, uint64_t mask,
         uint32_t repeatTimes, const BinaryRepeatParams& p) {
  sim::Binary("Mul", dst, src0, src1, mask, repeatTimes, p, [](T a, T b) { return a * b; });
}

template <typename T, bool isSetMask = true>
void Add(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, uint64_t mask,
         uint32_t repeatTimes, const BinaryRepeatParams& p) {
  sim::Binary("Add", dst, src0, src1, mask, repeatTimes, p, [](T a, T b) { return a + b; });
}

template <typename T, bool isSetMask = true>
void Sub(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, uint64_t mask,
         uint32_t repeatTimes, const BinaryRepeatParams& p) {
  sim::Binary("Sub", dst, src0, src1, mask, repeatTimes, p, [](T a, T b) { return a - b; });
}

// dst[0] = sum of the `mask` leading elements of every repeat of src (repeats srcRepStride blocks
// apart). Atlas A2 reduces each repeat into the work buffer, then the partial sums (ReduceSum.md,
// method 2): the work buffer holds the repeats rounded up to whole 32-byte blocks; dst may overlap it.
template <typename T>
void ReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& work, int32_t mask,
               int32_t repeatTimes, int32_t srcRepStride) {
  const char* what = "ReduceSum";
  if (mask < 0 || repeatTimes < 0 || srcRepStride < 0) sim::Fail("ReduceSum: negative argument");
  sim::CheckRepeat(what, uint64_t(mask), uint32_t(repeatTimes), sim::kRepeatBytes / sizeof(T));
  sim::CheckField(what, "srcRepStride", uint32_t(srcRepStride), sim::kU16, "ReduceSum.md: [0, 65535]");
  const uint32_t repeats = uint32_t(repeatTimes);
  const uint32_t workElems = (repeats * sizeof(T) + sim::kBlock - 1) / sim::kBlock * (sim::kBlock / sizeof(T));
  const T* s = sim::VecPtr(src, what, uint64_t(mask), repeats, 1, uint32_t(srcRepStride));
  T* d = sim::VecPtr(dst, what, 1, 1, 1, 8);
  sim::VecPtr(work, "ReduceSum(work)", workElems, 1, 1, 8);
  const sim::VecOperand os = sim::Operand(src, uint64_t(mask), 1, uint32_t(srcRepStride));
  const sim::VecOperand od = sim::Operand(dst, 1, 1, 8);
  const sim::VecOperand ow{work.Addr(), 1, 8, workElems * uint32_t(sizeof(T)) / sim::kBlock};
  sim::CheckOverlap(what, od, os, repeats, "src");
  sim::CheckOverlap(what, ow, os, repeats, "src (against the work buffer)");
  sim::pipes().Begin(sim::Pipe::V);
  sim::VecTouch(os, repeats, false, what);
  sim::VecTouch(ow, 1, true, what);
  sim::VecTouch(od, 1, true, what);
  T acc = T(0);
  for (uint32_t r = 0; r < repeats; ++r)
    for (int32_t e = 0; e < mask; ++e) acc += s[sim::VecIndex<T>(r, uint64_t(e), 1, uint32_t(srcRepStride))];
  d[0] = acc;
  const uint32_t second = (repeats + 63) / 64;
  sim::VecDone(uint64_t(mask), repeats,
               2 * sim::cost::vec_instr_cycles + (repeats + second) * sim::cost::vec_reduce_cycles_per_repeat);
}

}  // namespace AscendC

#endif  // MXDCN_SIM_VECTOR_OPS_H
