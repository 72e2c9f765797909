// A CPU model of the part of the AscendC API that the mx_dcn kernels use -- a TEST HARNESS, not a
// device and not an emulator of its timing or pipelines.
//
// The kernel sources in ../../op_kernel compile unchanged against this header (instead of CANN's
// kernel_operator.h) and run on the CPU, one block index after another (see RunKernel). Every call
// checks the rule the hardware imposes and throws AscendC::sim::ModelError with a sentence naming
// the rule when a kernel breaks it:
//   - DataCopy moves whole 32-byte blocks: lengths multiple of 32 bytes; UB addresses 32-byte aligned;
//   - the Unified Buffer holds 192 KiB: TPipe::InitBuffer beyond it fails;
//   - repeatTimes is an 8-bit field (<= 255); block strides / DataCopy gaps are 16-bit (<= 65535);
//     repeat strides are 8-bit (<= 255); blockCount of a DataCopy <= 4095;
//   - every access stays inside its UB buffer and inside a GM buffer given to the kernel;
//   - GM buffers declared "accumulated" may only be written between SetAtomicAdd and SetAtomicNone;
//     plain outputs only outside it, and never the same element from two blocks; inputs never;
//   - a kernel must not return with atomic add still enabled; queues must balance.
// Parameter structs keep 32-bit fields here (16/8-bit on the device) so an out-of-range value reaches
// the check instead of being truncated; kernels assign them from 32-bit values without casts.
// Not modelled: pipeline concurrency (SetFlag/WaitFlag/PipeBarrier are no-ops, so a missing
// synchronisation is NOT caught), bank conflicts, timing, fp16 arithmetic, the cube unit.
#ifndef MXDCN_SIM_KERNEL_OPERATOR_H
#define MXDCN_SIM_KERNEL_OPERATOR_H

#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#define __global__
#define __aicore__
#define __gm__
#define GM_ADDR uint8_t*
#define KERNEL_TASK_TYPE_DEFAULT(type)

// Standard-C++ tiling structs: the kernel names its struct, then copies it out of the tiling
// argument (the host tiling wrote it with TilingContext::GetTilingData<T>()).
#define REGISTER_TILING_DEFAULT(type) using SimTilingType_ = type
#define GET_TILING_DATA(var, tiling) \
  SimTilingType_ var;                \
  ::AscendC::sim::LoadTiling(&var, sizeof(var), tiling)

namespace AscendC {

enum class TPosition : uint8_t { GM, VECIN, VECOUT, VECCALC, A1, A2, B1, B2, CO1, CO2 };
enum class HardEvent : uint8_t { MTE2_V, V_MTE2, MTE3_V, V_MTE3, MTE2_S, S_MTE2, MTE3_S, S_MTE3, V_S, S_V,
                                 MTE2_MTE3, MTE3_MTE2 };
enum pipe_t : uint8_t { PIPE_S, PIPE_V, PIPE_MTE2, PIPE_MTE3, PIPE_ALL };
using event_t = int32_t;

namespace sim {

constexpr uint32_t kUbCapacity = 192 * 1024;
constexpr uint32_t kBlock = 32;
constexpr uint32_t kRepeatBytes = 256;

struct ModelError : std::runtime_error {
  explicit ModelError(const std::string& what) : std::runtime_error(what) {}
};

[[noreturn]] void Fail(const std::string& rule);

enum class GmMode { kInput, kOutput, kAccumulate };

// Per-run state of the model (blocks run one after another, so one instance suffices).
struct Core {
  uint32_t blockIdx = 0;
  uint32_t blockNum = 1;
  uint32_t atomicElemSize = 0;     // 0: atomic add off; else sizeof(T) of SetAtomicAdd<T>
  uint32_t ubCapacity = kUbCapacity;
  uint32_t ubPeak = 0;
  std::string deferredError;       // found in a destructor; RunKernel raises it
  std::vector<uint8_t> ub = std::vector<uint8_t>(kUbCapacity + 64);
  void* pipe = nullptr;
  uint8_t* UbBase() {
    uintptr_t p = reinterpret_cast<uintptr_t>(ub.data());
    return reinterpret_cast<uint8_t*>((p + 63) / 64 * 64);
  }
};
Core& core();

struct GmBuffer {
  const uint8_t* begin;
  uint64_t bytes;
  std::string name;
  GmMode mode;
  std::vector<int32_t> owner;   // kOutput: the block that wrote each 4-byte word (-1: none yet)
};

// GM buffers a kernel may touch; RunKernel's caller registers them for the duration of a launch.
class GmRegistry {
 public:
  static GmRegistry& instance();
  void Add(const void* p, uint64_t bytes, const std::string& name, GmMode mode);
  void Clear();
  // The buffer holding [p, p + bytes) or a ModelError naming `what`.
  GmBuffer& Find(const void* p, uint64_t bytes, const char* what);
 private:
  std::vector<GmBuffer> buffers_;
};

// Checks a UB->GM write of `bytes` at `p` against the buffer's mode and the atomic state, and
// records which block owns each word of a plain output.
void CheckGmWrite(const void* p, uint64_t bytes, const char* what);

// Runs `kernel` once per block index 0..blockDim-1 (as the device would run them in parallel),
// with a fresh UB per block; adds the block index to any ModelError.
void RunKernel(uint32_t blockDim, const std::function<void()>& kernel);

inline void LoadTiling(void* dst, size_t bytes, const uint8_t* tiling) { std::memcpy(dst, tiling, bytes); }

inline std::string Str(uint64_t v) { return std::to_string(v); }

}  // namespace sim

inline uint32_t GetBlockIdx() { return sim::core().blockIdx; }
inline uint32_t GetBlockNum() { return sim::core().blockNum; }

// --------------------------------------------------------------------------- tensors

template <typename T>
class GlobalTensor {
 public:
  void SetGlobalBuffer(__gm__ T* buffer, uint64_t bufferSize = 0) { data_ = buffer; size_ = bufferSize; }
  GlobalTensor operator[](uint64_t offset) const {
    GlobalTensor t;
    t.data_ = data_ + offset;
    t.size_ = size_ > offset ? size_ - offset : 0;
    return t;
  }
  T GetValue(uint64_t i) const {
    sim::GmRegistry::instance().Find(data_ + i, sizeof(T), "GlobalTensor::GetValue");
    return data_[i];
  }
  void SetValue(uint64_t i, const T& v) {
    sim::CheckGmWrite(data_ + i, sizeof(T), "GlobalTensor::SetValue");
    data_[i] = v;
  }
  T* GetPhyAddr() const { return data_; }

 private:
  T* data_ = nullptr;
  uint64_t size_ = 0;
};

// A view into one UB buffer: knows the buffer's bounds, so every access is checked against them.
template <typename T>
class LocalTensor {
 public:
  LocalTensor() = default;
  LocalTensor(uint32_t addr, uint32_t bufBegin, uint32_t bufEnd) : addr_(addr), begin_(bufBegin), end_(bufEnd) {}
  LocalTensor operator[](uint32_t offset) const {
    return LocalTensor(addr_ + offset * uint32_t(sizeof(T)), begin_, end_);
  }
  T GetValue(uint32_t i) const { return *Ptr(i, 1, "LocalTensor::GetValue"); }
  void SetValue(uint32_t i, const T& v) const { *Ptr(i, 1, "LocalTensor::SetValue") = v; }
  uint32_t GetSize() const { return (end_ - addr_) / uint32_t(sizeof(T)); }
  uint64_t GetPhyAddr() const { return addr_; }
  template <typename U>
  LocalTensor<U> ReinterpretCast() const { return LocalTensor<U>(addr_, begin_, end_); }

  // Model internals: element i of this view, after checking that `count` elements fit the buffer.
  T* Ptr(uint64_t i, uint64_t count, const char* what) const {
    if (end_ == 0) sim::Fail(std::string(what) + ": the LocalTensor was never allocated");
    const uint64_t lo = addr_ + i * sizeof(T), hi = lo + count * sizeof(T);
    if (lo < begin_ || hi > end_) {
      sim::Fail(std::string(what) + ": access to UB bytes [" + sim::Str(lo) + ", " + sim::Str(hi) +
                ") leaves its buffer [" + sim::Str(begin_) + ", " + sim::Str(end_) + ")");
    }
    return reinterpret_cast<T*>(sim::core().UbBase() + lo);
  }
  void CheckAligned(const char* what) const {
    if (addr_ % sim::kBlock != 0) {
      sim::Fail(std::string(what) + ": UB address " + sim::Str(addr_) + " is not 32-byte aligned");
    }
  }
  uint32_t Addr() const { return addr_; }
  uint32_t BufEnd() const { return end_; }

 private:
  uint32_t addr_ = 0, begin_ = 0, end_ = 0;
};

// --------------------------------------------------------------------------- TPipe, TQue, TBuf

class TPipe;

struct TQueBase {
  uint32_t num = 0, len = 0, base = 0, depth = 0;
  std::vector<bool> busy;
  std::vector<uint32_t> fifo;   // enqueued buffer indices
  // A queue that ends its life with a buffer allocated or enqueued means a missing FreeTensor or
  // DeQue; destructors must not throw, so RunKernel reports it when the kernel returns.
  ~TQueBase();
};

template <TPosition pos, int32_t depth>
class TQue : public TQueBase {
 public:
  template <typename T>
  LocalTensor<T> AllocTensor() {
    if (num == 0) sim::Fail("TQue::AllocTensor: the queue was never given buffers (TPipe::InitBuffer)");
    for (uint32_t i = 0; i < num; ++i) {
      if (!busy[i]) {
        busy[i] = true;
        return LocalTensor<T>(base + i * len, base + i * len, base + (i + 1) * len);
      }
    }
    sim::Fail("TQue::AllocTensor: all " + sim::Str(num) + " buffers of the queue are in use (FreeTensor missing?)");
  }
  template <typename T>
  void EnQue(const LocalTensor<T>& t) {
    const uint32_t i = Index(t.Addr(), "TQue::EnQue");
    if (fifo.size() >= uint32_t(depth)) sim::Fail("TQue::EnQue: the queue already holds depth=" + sim::Str(depth) + " tensors");
    fifo.push_back(i);
  }
  template <typename T>
  LocalTensor<T> DeQue() {
    if (fifo.empty()) sim::Fail("TQue::DeQue: the queue is empty (EnQue missing?)");
    const uint32_t i = fifo.front();
    fifo.erase(fifo.begin());
    return LocalTensor<T>(base + i * len, base + i * len, base + (i + 1) * len);
  }
  template <typename T>
  void FreeTensor(const LocalTensor<T>& t) {
    const uint32_t i = Index(t.Addr(), "TQue::FreeTensor");
    if (!busy[i]) sim::Fail("TQue::FreeTensor: the buffer is not allocated");
    busy[i] = false;
  }

 private:
  uint32_t Index(uint32_t addr, const char* what) const {
    if (num == 0 || addr < base || addr >= base + num * len || (addr - base) % len != 0) {
      sim::Fail(std::string(what) + ": the tensor does not start a buffer of this queue");
    }
    return (addr - base) / len;
  }
};

template <TPosition pos>
class TBuf {
 public:
  template <typename T>
  LocalTensor<T> Get() const {
    if (len_ == 0) sim::Fail("TBuf::Get: the buffer was never given memory (TPipe::InitBuffer)");
    return LocalTensor<T>(base_, base_, base_ + len_);
  }
  template <typename T>
  LocalTensor<T> Get(uint32_t count) const {
    if (uint64_t(count) * sizeof(T) > len_) sim::Fail("TBuf::Get: " + sim::Str(count) + " elements exceed the buffer");
    return LocalTensor<T>(base_, base_, base_ + count * uint32_t(sizeof(T)));
  }
  uint32_t base_ = 0, len_ = 0;
};

// Hands out UB: every buffer 32-byte aligned, the total never above the UB capacity.
class TPipe {
 public:
  TPipe();
  ~TPipe();
  template <TPosition pos, int32_t depth>
  void InitBuffer(TQue<pos, depth>& que, uint32_t num, uint32_t len) {
    if (num == 0 || num > 8) sim::Fail("TPipe::InitBuffer: a queue takes 1 to 8 buffers, got " + sim::Str(num));
    que.len = Reserve(num, len, "TPipe::InitBuffer(TQue)");
    que.base = used_ - num * que.len;
    que.num = num;
    que.depth = depth;
    que.busy.assign(num, false);
    que.fifo.clear();
  }
  template <TPosition pos>
  void InitBuffer(TBuf<pos>& buf, uint32_t len) {
    buf.len_ = Reserve(1, len, "TPipe::InitBuffer(TBuf)");
    buf.base_ = used_ - buf.len_;
  }
  event_t FetchEventID(HardEvent) { return 0; }
  template <HardEvent evt>
  event_t AllocEventID() { return 0; }
  template <HardEvent evt>
  void ReleaseEventID(event_t) {}
  void Reset() { used_ = 0; }
  uint32_t Used() const { return used_; }

 private:
  uint32_t Reserve(uint32_t num, uint32_t len, const char* what);
  uint32_t used_ = 0;
};

TPipe* GetTPipePtr();

// --------------------------------------------------------------------------- synchronisation (not modelled)

template <HardEvent evt>
inline void SetFlag(event_t) {}
template <HardEvent evt>
inline void WaitFlag(event_t) {}
template <pipe_t pipe>
inline void PipeBarrier() {}

// --------------------------------------------------------------------------- atomics

template <typename T>
inline void SetAtomicAdd() { sim::core().atomicElemSize = sizeof(T); }
inline void SetAtomicNone() { sim::core().atomicElemSize = 0; }

// --------------------------------------------------------------------------- data movement

// Field types are 16-bit on the device; 32-bit here so the model sees and rejects a value > 65535.
struct DataCopyParams {
  DataCopyParams() {}
  DataCopyParams(uint32_t count, uint32_t len, uint32_t srcGap, uint32_t dstGap)
      : blockCount(count), blockLen(len), srcStride(srcGap), dstStride(dstGap) {}
  uint32_t blockCount = 1;
  uint32_t blockLen = 0;    // in 32-byte blocks
  uint32_t srcStride = 0;   // gap between blocks, in 32-byte blocks
  uint32_t dstStride = 0;
};

struct DataCopyExtParams {
  DataCopyExtParams() {}
  DataCopyExtParams(uint32_t count, uint32_t len, uint32_t srcGap, uint32_t dstGap, uint32_t reserved)
      : blockCount(count), blockLen(len), srcStride(srcGap), dstStride(dstGap), rsv(reserved) {}
  uint32_t blockCount = 1;
  uint32_t blockLen = 0;    // in bytes
  uint32_t srcStride = 0;   // GM side: bytes; UB side: 32-byte blocks
  uint32_t dstStride = 0;
  uint32_t rsv = 0;
};

template <typename T>
struct DataCopyPadExtParams {
  DataCopyPadExtParams() {}
  DataCopyPadExtParams(bool pad, uint32_t left, uint32_t right, T value)
      : isPad(pad), leftPadding(left), rightPadding(right), paddingValue(value) {}
  bool isPad = false;
  uint32_t leftPadding = 0, rightPadding = 0;
  T paddingValue = T(0);
};

namespace sim {

void CheckCopyParams(const char* what, uint32_t blockCount, uint32_t blockLen, uint32_t srcGap, uint32_t dstGap,
                     bool gapsAreBlocks);
[[noreturn]] void FailLength(const char* what, uint64_t bytes);

// A strided copy: blockCount bursts of `burst` bytes, source and destination advancing by their
// pitch. `toGm` selects which side is GM (for the write checks).
template <typename T>
void StridedCopy(uint8_t* dst, const uint8_t* src, uint32_t blockCount, uint64_t burst, uint64_t srcPitch,
                 uint64_t dstPitch, bool toGm, const char* what) {
  for (uint32_t b = 0; b < blockCount; ++b) {
    const uint8_t* s = src + b * srcPitch;
    uint8_t* d = dst + b * dstPitch;
    if (toGm) {
      CheckGmWrite(d, burst, what);
      if (core().atomicElemSize != 0) {
        if (core().atomicElemSize != sizeof(T)) Fail(std::string(what) + ": SetAtomicAdd type differs from the copied type");
        T* dt = reinterpret_cast<T*>(d);
        const T* st = reinterpret_cast<const T*>(s);
        for (uint64_t i = 0; i < burst / sizeof(T); ++i) dt[i] += st[i];
        continue;
      }
    } else {
      GmRegistry::instance().Find(s, burst, what);
    }
    std::memmove(d, s, burst);
  }
}

}  // namespace sim

// GM -> UB, `count` elements.
template <typename T>
void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, uint32_t count) {
  if (uint64_t(count) * sizeof(T) % sim::kBlock != 0) sim::FailLength("DataCopy(GM->UB)", uint64_t(count) * sizeof(T));
  dst.CheckAligned("DataCopy(GM->UB)");
  T* d = dst.Ptr(0, count, "DataCopy(GM->UB)");
  sim::StridedCopy<T>(reinterpret_cast<uint8_t*>(d), reinterpret_cast<const uint8_t*>(src.GetPhyAddr()), 1,
                      uint64_t(count) * sizeof(T), 0, 0, false, "DataCopy(GM->UB)");
}

// UB -> GM, `count` elements (an atomic add when SetAtomicAdd is active).
template <typename T>
void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, uint32_t count) {
  if (uint64_t(count) * sizeof(T) % sim::kBlock != 0) sim::FailLength("DataCopy(UB->GM)", uint64_t(count) * sizeof(T));
  src.CheckAligned("DataCopy(UB->GM)");
  const T* s = src.Ptr(0, count, "DataCopy(UB->GM)");
  sim::StridedCopy<T>(reinterpret_cast<uint8_t*>(dst.GetPhyAddr()), reinterpret_cast<const uint8_t*>(s), 1,
                      uint64_t(count) * sizeof(T), 0, 0, true, "DataCopy(UB->GM)");
}

// GM -> UB, blockCount bursts of blockLen 32-byte blocks; gaps in 32-byte blocks.
template <typename T>
void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyParams& p) {
  sim::CheckCopyParams("DataCopy(GM->UB)", p.blockCount, p.blockLen, p.srcStride, p.dstStride, true);
  dst.CheckAligned("DataCopy(GM->UB)");
  const uint64_t burst = uint64_t(p.blockLen) * sim::kBlock;
  const uint64_t dstPitch = burst + uint64_t(p.dstStride) * sim::kBlock;
  dst.Ptr(0, ((p.blockCount - 1) * dstPitch + burst) / sizeof(T), "DataCopy(GM->UB)");
  sim::StridedCopy<T>(reinterpret_cast<uint8_t*>(dst.Ptr(0, 0, "DataCopy(GM->UB)")),
                      reinterpret_cast<const uint8_t*>(src.GetPhyAddr()), p.blockCount, burst,
                      burst + uint64_t(p.srcStride) * sim::kBlock, dstPitch, false, "DataCopy(GM->UB)");
}

// UB -> GM with DataCopyParams.
template <typename T>
void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& p) {
  sim::CheckCopyParams("DataCopy(UB->GM)", p.blockCount, p.blockLen, p.srcStride, p.dstStride, true);
  src.CheckAligned("DataCopy(UB->GM)");
  const uint64_t burst = uint64_t(p.blockLen) * sim::kBlock;
  const uint64_t srcPitch = burst + uint64_t(p.srcStride) * sim::kBlock;
  src.Ptr(0, ((p.blockCount - 1) * srcPitch + burst) / sizeof(T), "DataCopy(UB->GM)");
  sim::StridedCopy<T>(reinterpret_cast<uint8_t*>(dst.GetPhyAddr()),
                      reinterpret_cast<const uint8_t*>(src.Ptr(0, 0, "DataCopy(UB->GM)")), p.blockCount, burst,
                      srcPitch, burst + uint64_t(p.dstStride) * sim::kBlock, true, "DataCopy(UB->GM)");
}

// GM -> UB of any byte length: each burst lands at a 32-byte boundary; the rest of its last block
// is left undefined (filled with 0xFF, a NaN pattern, so a kernel that reads it is caught).
template <typename T>
void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyExtParams& p,
                 const DataCopyPadExtParams<T>& pad) {
  sim::CheckCopyParams("DataCopyPad(GM->UB)", p.blockCount, p.blockLen, 0, p.dstStride, false);
  if (pad.isPad) sim::Fail("DataCopyPad(GM->UB): padding is not modelled");
  if (p.blockLen % sizeof(T) != 0) sim::Fail("DataCopyPad(GM->UB): blockLen is not a whole number of elements");
  dst.CheckAligned("DataCopyPad(GM->UB)");
  const uint64_t padded = (uint64_t(p.blockLen) + sim::kBlock - 1) / sim::kBlock * sim::kBlock;
  const uint64_t dstPitch = padded + uint64_t(p.dstStride) * sim::kBlock;
  uint8_t* d = reinterpret_cast<uint8_t*>(dst.Ptr(0, ((p.blockCount - 1) * dstPitch + padded) / sizeof(T), "DataCopyPad(GM->UB)"));
  for (uint32_t b = 0; b < p.blockCount; ++b) std::memset(d + b * dstPitch, 0xFF, padded);
  sim::StridedCopy<T>(d, reinterpret_cast<const uint8_t*>(src.GetPhyAddr()), p.blockCount, p.blockLen,
                      uint64_t(p.blockLen) + p.srcStride, dstPitch, false, "DataCopyPad(GM->UB)");
}

// UB -> GM of any byte length.
template <typename T>
void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& p) {
  sim::CheckCopyParams("DataCopyPad(UB->GM)", p.blockCount, p.blockLen, p.srcStride, 0, false);
  if (p.blockLen % sizeof(T) != 0) sim::Fail("DataCopyPad(UB->GM): blockLen is not a whole number of elements");
  src.CheckAligned("DataCopyPad(UB->GM)");
  const uint64_t padded = (uint64_t(p.blockLen) + sim::kBlock - 1) / sim::kBlock * sim::kBlock;
  const uint64_t srcPitch = padded + uint64_t(p.srcStride) * sim::kBlock;
  const uint8_t* s = reinterpret_cast<const uint8_t*>(
      src.Ptr(0, ((p.blockCount - 1) * srcPitch + p.blockLen) / sizeof(T), "DataCopyPad(UB->GM)"));
  sim::StridedCopy<T>(reinterpret_cast<uint8_t*>(dst.GetPhyAddr()), s, p.blockCount, p.blockLen, srcPitch,
                      uint64_t(p.blockLen) + p.dstStride, true, "DataCopyPad(UB->GM)");
}

// --------------------------------------------------------------------------- vector instructions
//
// Level-0 form: `repeatTimes` repeats of up to 256 bytes; within a repeat, `mask` leading elements
// (continuous mask mode) spread over 32-byte blocks `blkStride` blocks apart; repeats `repStride`
// blocks apart.

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
void CheckStrides(const char* what, uint32_t blkStride, uint32_t repStride);

// Element e (0 <= e < mask) of repeat r of an operand with the given strides -> element index.
template <typename T>
uint64_t VecIndex(uint32_t r, uint64_t e, uint32_t blkStride, uint32_t repStride) {
  const uint64_t perBlock = kBlock / sizeof(T);
  return uint64_t(r) * repStride * perBlock + (e / perBlock) * blkStride * perBlock + e % perBlock;
}

// The last element a level-0 operand touches + 1 (for the bounds check).
template <typename T>
uint64_t VecExtent(uint64_t mask, uint32_t repeatTimes, uint32_t blkStride, uint32_t repStride) {
  if (repeatTimes == 0 || mask == 0) return 0;
  return VecIndex<T>(repeatTimes - 1, mask - 1, blkStride, repStride) + 1;
}

template <typename T>
T* VecOperand(const LocalTensor<T>& t, const char* what, uint64_t mask, uint32_t repeatTimes, uint32_t blkStride,
              uint32_t repStride) {
  t.CheckAligned(what);
  CheckStrides(what, blkStride, repStride);
  return t.Ptr(0, VecExtent<T>(mask, repeatTimes, blkStride, repStride), what);
}

}  // namespace sim

template <typename T, bool isSetMask = true>
void Duplicate(const LocalTensor<T>& dst, const T& scalar, uint64_t mask, uint32_t repeatTimes, uint32_t dstBlkStride,
               uint32_t dstRepStride) {
  sim::CheckRepeat("Duplicate", mask, repeatTimes, sim::kRepeatBytes / sizeof(T));
  T* d = sim::VecOperand(dst, "Duplicate", mask, repeatTimes, dstBlkStride, dstRepStride);
  for (uint32_t r = 0; r < repeatTimes; ++r)
    for (uint64_t e = 0; e < mask; ++e) d[sim::VecIndex<T>(r, e, dstBlkStride, dstRepStride)] = scalar;
}

namespace sim {
template <typename T, typename F>
void Unary(const char* what, const LocalTensor<T>& dst, const LocalTensor<T>& src, uint64_t mask, uint32_t repeatTimes,
           const UnaryRepeatParams& p, F f) {
  CheckRepeat(what, mask, repeatTimes, kRepeatBytes / sizeof(T));
  T* d = VecOperand(dst, what, mask, repeatTimes, p.dstBlkStride, p.dstRepStride);
  const T* s = VecOperand(src, what, mask, repeatTimes, p.srcBlkStride, p.srcRepStride);
  for (uint32_t r = 0; r < repeatTimes; ++r)
    for (uint64_t e = 0; e < mask; ++e) {
      T& out = d[VecIndex<T>(r, e, p.dstBlkStride, p.dstRepStride)];
      out = f(out, s[VecIndex<T>(r, e, p.srcBlkStride, p.srcRepStride)]);
    }
}

template <typename T, typename F>
void Binary(const char* what, const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
            uint64_t mask, uint32_t repeatTimes, const BinaryRepeatParams& p, F f) {
  CheckRepeat(what, mask, repeatTimes, kRepeatBytes / sizeof(T));
  T* d = VecOperand(dst, what, mask, repeatTimes, p.dstBlkStride, p.dstRepStride);
  const T* a = VecOperand(src0, what, mask, repeatTimes, p.src0BlkStride, p.src0RepStride);
  const T* b = VecOperand(src1, what, mask, repeatTimes, p.src1BlkStride, p.src1RepStride);
  for (uint32_t r = 0; r < repeatTimes; ++r)
    for (uint64_t e = 0; e < mask; ++e)
      d[VecIndex<T>(r, e, p.dstBlkStride, p.dstRepStride)] =
          f(a[VecIndex<T>(r, e, p.src0BlkStride, p.src0RepStride)], b[VecIndex<T>(r, e, p.src1BlkStride, p.src1RepStride)]);
}
}  // namespace sim

// dst = src * scalar
template <typename T, bool isSetMask = true>
void Muls(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalar, uint64_t mask, uint32_t repeatTimes,
          const UnaryRepeatParams& p) {
  sim::Unary("Muls", dst, src, mask, repeatTimes, p, [&](T, T s) { return s * scalar; });
}

// dst = src * scalar + dst
template <typename T, typename U, bool isSetMask = true>
void Axpy(const LocalTensor<T>& dst, const LocalTensor<U>& src, const U& scalar, uint64_t mask, uint32_t repeatTimes,
          const UnaryRepeatParams& p) {
  static_assert(std::is_same<T, U>::value, "the model supports Axpy with one element type only");
  sim::Unary("Axpy", dst, src, mask, repeatTimes, p, [&](T d, T s) { return s * scalar + d; });
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

// dst[0] = sum of the `mask` leading elements of every repeat of src (repeats srcRepStride blocks
// apart). The model requires one element of work space per repeat.
template <typename T>
void ReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& work, int32_t mask,
               int32_t repeatTimes, int32_t srcRepStride) {
  if (mask < 0 || repeatTimes < 0 || srcRepStride < 0) sim::Fail("ReduceSum: negative argument");
  sim::CheckRepeat("ReduceSum", uint64_t(mask), uint32_t(repeatTimes), sim::kRepeatBytes / sizeof(T));
  const T* s = sim::VecOperand(src, "ReduceSum", uint64_t(mask), uint32_t(repeatTimes), 1, uint32_t(srcRepStride));
  T* d = sim::VecOperand(dst, "ReduceSum", 1, 1, 1, 8);
  sim::VecOperand(work, "ReduceSum(work)", 1, 1, 1, 8);
  work.Ptr(0, uint32_t(repeatTimes), "ReduceSum(work)");
  T acc = T(0);
  for (int32_t r = 0; r < repeatTimes; ++r)
    for (int32_t e = 0; e < mask; ++e) acc += s[sim::VecIndex<T>(uint32_t(r), uint64_t(e), 1, uint32_t(srcRepStride))];
  d[0] = acc;
}

}  // namespace AscendC

#endif  // MXDCN_SIM_KERNEL_OPERATOR_H
