// The stateful part of the AscendC CPU model (see include/kernel_operator.h): errors, GM registry,
// UB accounting, the block driver.
#include "kernel_operator.h"

namespace AscendC {
namespace sim {

void Fail(const std::string& rule) { throw ModelError("AscendC model: " + rule); }

void FailLength(const char* what, uint64_t bytes) {
  Fail(std::string(what) + ": length " + Str(bytes) + " bytes is not a multiple of 32 bytes "
       "(DataCopy moves whole 32-byte blocks; use DataCopyPad for other lengths)");
}

Core& core() {
  static Core c;
  return c;
}

GmRegistry& GmRegistry::instance() {
  static GmRegistry r;
  return r;
}

void GmRegistry::Add(const void* p, uint64_t bytes, const std::string& name, GmMode mode) {
  GmBuffer b{static_cast<const uint8_t*>(p), bytes, name, mode, {}};
  if (mode == GmMode::kOutput) b.owner.assign((bytes + 3) / 4, -1);
  buffers_.push_back(std::move(b));
}

void GmRegistry::Clear() { buffers_.clear(); }

GmBuffer& GmRegistry::Find(const void* p, uint64_t bytes, const char* what) {
  const uint8_t* lo = static_cast<const uint8_t*>(p);
  for (GmBuffer& b : buffers_) {
    if (b.bytes > 0 && lo >= b.begin && lo + bytes <= b.begin + b.bytes) return b;
  }
  std::string names;
  for (const GmBuffer& b : buffers_) names += (names.empty() ? "" : ", ") + b.name;
  Fail(std::string(what) + ": GM bytes [" + Str(reinterpret_cast<uintptr_t>(lo)) + ", +" + Str(bytes) +
       ") lie outside every buffer given to the kernel (" + names + ")");
}

void CheckGmWrite(const void* p, uint64_t bytes, const char* what) {
  GmBuffer& b = GmRegistry::instance().Find(p, bytes, what);
  const bool atomic = core().atomicElemSize != 0;
  switch (b.mode) {
    case GmMode::kInput:
      Fail(std::string(what) + ": writes into input '" + b.name + "'");
    case GmMode::kAccumulate:
      if (!atomic) {
        Fail(std::string(what) + ": plain write into '" + b.name + "', which several blocks accumulate into: an "
             "atomic add is required, i.e. the copy must sit between SetAtomicAdd and SetAtomicNone");
      }
      return;
    case GmMode::kOutput: {
      if (atomic) {
        Fail(std::string(what) + ": atomic add into '" + b.name + "', a plain output (SetAtomicNone missing?)");
      }
      const uint64_t first = (static_cast<const uint8_t*>(p) - b.begin) / 4;
      const int32_t me = static_cast<int32_t>(core().blockIdx);
      for (uint64_t i = first; i < first + (bytes + 3) / 4 && i < b.owner.size(); ++i) {
        if (b.owner[i] != -1 && b.owner[i] != me) {
          Fail(std::string(what) + ": blocks " + Str(uint64_t(b.owner[i])) + " and " + Str(uint64_t(me)) +
               " both write element " + Str(i) + " of '" + b.name + "': the work split overlaps");
        }
        b.owner[i] = me;
      }
      return;
    }
  }
}

void CheckCopyParams(const char* what, uint32_t blockCount, uint32_t blockLen, uint32_t srcGap, uint32_t dstGap,
                     bool gapsAreBlocks) {
  if (blockCount < 1 || blockCount > 4095) Fail(std::string(what) + ": blockCount " + Str(blockCount) + " outside [1, 4095]");
  if (blockLen < 1) Fail(std::string(what) + ": blockLen must be at least 1");
  if (gapsAreBlocks && blockLen > 65535) Fail(std::string(what) + ": blockLen " + Str(blockLen) + " exceeds the 16-bit field (65535)");
  if (gapsAreBlocks && (srcGap > 65535 || dstGap > 65535)) {
    Fail(std::string(what) + ": block stride (gap) " + Str(srcGap > 65535 ? srcGap : dstGap) +
         " exceeds the 16-bit field (65535 blocks)");
  }
}

void CheckRepeat(const char* what, uint64_t mask, uint32_t repeatTimes, uint32_t maskMax) {
  if (repeatTimes > 255) {
    Fail(std::string(what) + ": repeatTimes " + Str(repeatTimes) + " exceeds 255 (an 8-bit field); split the call");
  }
  if (mask < 1 || mask > maskMax) Fail(std::string(what) + ": mask " + Str(mask) + " outside [1, " + Str(maskMax) + "]");
}

void CheckStrides(const char* what, uint32_t blkStride, uint32_t repStride) {
  if (blkStride > 65535) Fail(std::string(what) + ": block stride " + Str(blkStride) + " exceeds the 16-bit field (65535)");
  if (repStride > 255) Fail(std::string(what) + ": repeat stride " + Str(repStride) + " exceeds the 8-bit field (255)");
}

void RunKernel(uint32_t blockDim, const std::function<void()>& kernel) {
  Core& c = core();
  c.blockNum = blockDim;
  c.ubPeak = 0;
  for (uint32_t b = 0; b < blockDim; ++b) {
    c.blockIdx = b;
    c.atomicElemSize = 0;
    c.deferredError.clear();
    try {
      kernel();
      if (!c.deferredError.empty()) Fail(c.deferredError);
      if (c.atomicElemSize != 0) Fail("the kernel returned with SetAtomicAdd still active (SetAtomicNone missing)");
    } catch (const ModelError& e) {
      c.atomicElemSize = 0;
      c.deferredError.clear();
      throw ModelError(std::string(e.what()) + " [block " + Str(b) + " of " + Str(blockDim) + "]");
    }
  }
}

}  // namespace sim

namespace {
TPipe* g_pipe = nullptr;
}

TQueBase::~TQueBase() {
  bool allocated = false;
  for (bool b : busy) allocated = allocated || b;
  if ((allocated || !fifo.empty()) && sim::core().deferredError.empty()) {
    sim::core().deferredError = allocated
        ? "TQue: a buffer was still allocated when the kernel returned (FreeTensor missing)"
        : "TQue: a tensor was still enqueued when the kernel returned (DeQue missing)";
  }
}

TPipe* GetTPipePtr() {
  if (g_pipe == nullptr) sim::Fail("GetTPipePtr: no TPipe exists");
  return g_pipe;
}

TPipe::TPipe() {
  if (g_pipe != nullptr) sim::Fail("TPipe: a second TPipe while one is alive");
  g_pipe = this;
  // Fresh UB holds garbage on the device: fill it with a NaN pattern so reads of unwritten data show.
  std::memset(sim::core().UbBase(), 0xFF, sim::core().ubCapacity);
}

TPipe::~TPipe() { g_pipe = nullptr; }

uint32_t TPipe::Reserve(uint32_t num, uint32_t len, const char* what) {
  const uint64_t aligned = (uint64_t(len) + sim::kBlock - 1) / sim::kBlock * sim::kBlock;
  const uint64_t total = used_ + aligned * num;
  if (len == 0) sim::Fail(std::string(what) + ": zero-length buffer");
  if (total > sim::core().ubCapacity) {
    sim::Fail(std::string(what) + ": UB capacity exceeded: " + sim::Str(num) + " x " + sim::Str(aligned) +
              " bytes requested with " + sim::Str(used_) + " already in use, capacity " +
              sim::Str(sim::core().ubCapacity) + " bytes");
  }
  used_ = static_cast<uint32_t>(total);
  if (used_ > sim::core().ubPeak) sim::core().ubPeak = used_;
  return static_cast<uint32_t>(aligned);
}

}  // namespace AscendC
