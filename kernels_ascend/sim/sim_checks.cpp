// Field ranges and operand rules of the copy and vector instructions of the AscendC CPU model
// (see include/sim/data_copy.h and vector_ops.h for the rules and their sources).
#include <algorithm>

#include "kernel_operator.h"

namespace AscendC {
namespace sim {

bool CheckCopyParams(const char* what, uint32_t blockCount, uint32_t blockLen, uint32_t srcGap, uint32_t dstGap,
                     bool blocks, uint64_t maxLenBytes) {
  if (blockCount > 4095) Fail(std::string(what) + ": blockCount " + Str(blockCount) + " outside [0, 4095]");
  if (blocks) {
    const char* decl = " (uint16_t in DataCopyParams, include/basic_api/kernel_struct_data_copy.h)";
    if (blockLen > 65535) Fail(std::string(what) + ": blockLen " + Str(blockLen) + " exceeds the 16-bit field (65535 blocks)" + decl);
    if (srcGap > 65535 || dstGap > 65535) {
      Fail(std::string(what) + ": block stride (gap) " + Str(srcGap > 65535 ? srcGap : dstGap) +
           " exceeds the 16-bit field (65535 blocks)" + decl);
    }
  } else if (blockLen > maxLenBytes) {
    Fail(std::string(what) + ": blockLen " + Str(blockLen) + " bytes outside [0, " + Str(maxLenBytes) + "]");
  }
  return blockCount != 0 && blockLen != 0;
}

void CheckRepeat(const char* what, uint64_t mask, uint32_t repeatTimes, uint32_t maskMax) {
  if (repeatTimes > 255) {
    Fail(std::string(what) + ": repeatTimes " + Str(repeatTimes) + " exceeds 255 (an 8-bit field, 高维切分.md); split the call");
  }
  if (mask < 1 || mask > maskMax) Fail(std::string(what) + ": mask " + Str(mask) + " outside [1, " + Str(maskMax) + "]");
}

void CheckField(const char* what, const char* field, uint64_t value, uint64_t max, const char* decl) {
  if (value > max) {
    Fail(std::string(what) + ": " + field + " " + Str(value) + " exceeds its field (at most " + Str(max) + ": " + decl + ")");
  }
}

namespace {
// Block j of repeat r of an operand, in 32-byte blocks from UB address 0.
inline uint32_t BlockOf(const VecOperand& o, uint32_t r, uint32_t j) { return o.addr / kBlock + r * o.rep + j * o.blk; }
inline uint32_t LastBlock(const VecOperand& o, uint32_t repeats) { return BlockOf(o, repeats - 1, o.blocks - 1); }
}  // namespace

void CheckOverlap(const char* what, const VecOperand& d, const VecOperand& s, uint32_t repeats, const char* srcName) {
  if (repeats == 0) return;
  const uint32_t dLo = d.addr / kBlock, dHi = LastBlock(d, repeats), sLo = s.addr / kBlock, sHi = LastBlock(s, repeats);
  if (dHi < sLo || sHi < dLo) return;   // disjoint: the common case
  const bool same = d.addr == s.addr && d.blk == s.blk && d.rep == s.rep && d.blocks == s.blocks;
  if (same && (repeats == 1 || d.rep > (d.blocks - 1) * d.blk)) return;   // in place, repeats apart
  // The repeat that first writes each block, then every source block against it.
  const uint32_t lo = std::min(dLo, sLo), hi = std::max(dHi, sHi);
  std::vector<int32_t> writer(hi - lo + 1, -1);
  for (uint32_t r = 0; r < repeats; ++r)
    for (uint32_t j = 0; j < d.blocks; ++j) {
      int32_t& w = writer[BlockOf(d, r, j) - lo];
      if (w < 0) w = int32_t(r);
    }
  const std::string rule = " (通用说明和约束.md, 通用地址重叠约束)";
  for (uint32_t r = 0; r < repeats; ++r)
    for (uint32_t j = 0; j < s.blocks; ++j) {
      const int32_t w = writer[BlockOf(s, r, j) - lo];
      if (w < 0 || uint32_t(w) > r) continue;
      if (uint32_t(w) < r) {
        Fail(std::string(what) + ": the destination of repeat " + Str(uint64_t(w)) + " overlaps " + srcName +
             " of the later repeat " + Str(r) + rule);
      }
      if (!same) {
        Fail(std::string(what) + ": the destination and " + srcName + " overlap partially in repeat " + Str(r) +
             ": they must overlap 100% or not at all" + rule);
      }
    }
}

void CheckCount(const char* what, int64_t count) {
  if (count < 0) Fail(std::string(what) + ": count " + std::to_string(count) + " is negative");
}

void CheckSpanOverlap(const char* what, const Span& d, const Span& s, bool sameSize, const char* srcName) {
  if (d.bytes == 0 || s.bytes == 0) return;
  if (d.addr + d.bytes <= s.addr || s.addr + s.bytes <= d.addr) return;   // disjoint
  if (sameSize && d.addr == s.addr && d.bytes == s.bytes) return;         // in place
  Fail(std::string(what) + ": the destination and " + srcName + (sameSize ? " overlap partially" : " overlap") +
       ": they must overlap 100% or not at all (通用说明和约束.md, 通用地址重叠约束)");
}

void SpanTouch(const Span& s, bool write, const char* what) { pipes().Ub(Pipe::V, write, s.addr, s.addr + s.bytes, what); }

void VecTouch(const VecOperand& op, uint32_t repeats, bool write, const char* what) {
  PipeModel& pm = pipes();
  if (op.blk == 1 && op.rep == op.blocks) {   // contiguous
    pm.Ub(Pipe::V, write, op.addr, op.addr + repeats * op.blocks * kBlock, what);
    return;
  }
  for (uint32_t r = 0; r < repeats; ++r) {
    if (op.blk == 1) {
      const uint32_t lo = op.addr + r * op.rep * kBlock;
      pm.Ub(Pipe::V, write, lo, lo + op.blocks * kBlock, what);
      continue;
    }
    for (uint32_t j = 0; j < op.blocks; ++j) {
      const uint32_t lo = op.addr + (r * op.rep + j * op.blk) * kBlock;
      pm.Ub(Pipe::V, write, lo, lo + kBlock, what);
    }
  }
}

}  // namespace sim
}  // namespace AscendC
