// Data movement between GM and UB (AscendC CPU model): DataCopy on MTE2 (GM -> UB) and MTE3
// (UB -> GM) (include/basic_api/kernel_operator_data_copy_intf.h: __inout_pipe__(MTE2/MTE3)), in
// whole 32-byte blocks; DataCopyPad for other lengths. Field ranges follow the declarations in
// include/basic_api/kernel_struct_data_copy.h and the documented ranges in docs/zh/api/SIMD-API/
// 基础API/Memory矢量计算/数据搬运/ (DataCopy（GM与UB高维切分数据搬运）.md, DataCopyPad（GMToUB非对齐数据搬运）.md).
#ifndef MXDCN_SIM_DATA_COPY_H
#define MXDCN_SIM_DATA_COPY_H

namespace AscendC {

// Fields are uint16_t on the device; 32-bit here so the model sees and rejects a value > 65535
// instead of a silently truncated one.
struct DataCopyParams {
  DataCopyParams() {}
  DataCopyParams(uint32_t count, uint32_t len, uint32_t srcGap, uint32_t dstGap)
      : blockCount(count), blockLen(len), srcStride(srcGap), dstStride(dstGap) {}
  uint32_t blockCount = 1;
  uint32_t blockLen = 0;    // in 32-byte blocks
  uint32_t srcStride = 0;   // gap between bursts, in 32-byte blocks
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

[[noreturn]] void FailLength(const char* what, uint64_t bytes);
// blockCount in [0, 4095]; with `blocks`, blockLen and both gaps are 16-bit block counts; else
// blockLen is a byte count of at most `maxLenBytes`. Returns false for a no-op copy (blockCount or
// blockLen 0: a NOP on Atlas A2 per the docs above).
bool CheckCopyParams(const char* what, uint32_t blockCount, uint32_t blockLen, uint32_t srcGap, uint32_t dstGap,
                     bool blocks, uint64_t maxLenBytes);
inline uint64_t Align32(uint64_t bytes) { return (bytes + kBlock - 1) / kBlock * kBlock; }

// `bursts` bursts; GM side `gmBurst` bytes every `gmPitch` bytes; UB side `ubBurst` bytes touched
// every `ubPitch` bytes.
struct CopyShape {
  uint32_t bursts;
  uint64_t gmBurst, gmPitch, ubBurst, ubPitch;
};

// GM -> UB on MTE2. `fillPad`: the UB bytes past each burst up to `ubBurst` are undefined on the
// device -- filled with 0xFF (a NaN pattern) so a kernel that reads them is caught.
template <typename T>
void CopyGmToUb(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const CopyShape& s, bool fillPad,
                const char* what) {
  dst.CheckAligned(what);
  uint8_t* d = reinterpret_cast<uint8_t*>(dst.Ptr(0, ((s.bursts - 1) * s.ubPitch + s.ubBurst) / sizeof(T), what));
  src.CheckRange(0, ((s.bursts - 1) * s.gmPitch + s.gmBurst + sizeof(T) - 1) / sizeof(T), what);
  PipeModel& pm = pipes();
  pm.Begin(Pipe::MTE2);
  const uint8_t* g = reinterpret_cast<const uint8_t*>(src.GetPhyAddr());
  const GmBuffer* buffer = nullptr;
  for (uint32_t b = 0; b < s.bursts; ++b) {
    buffer = &GmRead(Pipe::MTE2, g + b * s.gmPitch, s.gmBurst, what);
    pm.Ub(Pipe::MTE2, true, dst.Addr() + uint32_t(b * s.ubPitch), dst.Addr() + uint32_t(b * s.ubPitch + s.ubBurst), what);
    if (fillPad) std::memset(d + b * s.ubPitch, 0xFF, s.ubBurst);
    std::memmove(d + b * s.ubPitch, g + b * s.gmPitch, s.gmBurst);
  }
  const double bytes = double(s.bursts) * double(Align32(s.gmBurst));
  const bool aligned = uint64_t(g - buffer->begin) % 512 == 0 && (s.bursts == 1 || s.gmPitch % 512 == 0);
  pm.counters.gm_read_bytes += bytes;
  pm.counters.mte2_copies += 1;
  pm.End(Pipe::MTE2, pm.DmaCycles(bytes, aligned));
}

// UB -> GM on MTE3; an atomic add of the elements when SetAtomicAdd is active.
template <typename T>
void CopyUbToGm(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const CopyShape& s, const char* what) {
  src.CheckAligned(what);
  const uint8_t* u = reinterpret_cast<const uint8_t*>(
      src.Ptr(0, ((s.bursts - 1) * s.ubPitch + s.ubBurst + sizeof(T) - 1) / sizeof(T), what));
  dst.CheckRange(0, ((s.bursts - 1) * s.gmPitch + s.gmBurst + sizeof(T) - 1) / sizeof(T), what);
  const bool atomic = core().atomicElemSize != 0;
  if (atomic && core().atomicElemSize != sizeof(T)) Fail(std::string(what) + ": SetAtomicAdd type differs from the copied type");
  PipeModel& pm = pipes();
  pm.Begin(Pipe::MTE3);
  uint8_t* g = reinterpret_cast<uint8_t*>(dst.GetPhyAddr());
  const GmBuffer* buffer = nullptr;
  for (uint32_t b = 0; b < s.bursts; ++b) {
    uint8_t* out = g + b * s.gmPitch;
    buffer = &GmWrite(Pipe::MTE3, out, s.gmBurst, what);
    pm.Ub(Pipe::MTE3, false, src.Addr() + uint32_t(b * s.ubPitch), src.Addr() + uint32_t(b * s.ubPitch + s.ubBurst), what);
    const uint8_t* in = u + b * s.ubPitch;
    if (atomic) {
      if constexpr (std::is_arithmetic<T>::value) {
        T* dt = reinterpret_cast<T*>(out);
        const T* st = reinterpret_cast<const T*>(in);
        for (uint64_t i = 0; i < s.gmBurst / sizeof(T); ++i) dt[i] += st[i];
      } else {
        Fail(std::string(what) + ": atomic add of 16-bit floats is not modelled");
      }
    } else {
      std::memmove(out, in, s.gmBurst);
    }
  }
  const double bytes = double(s.bursts) * double(Align32(s.gmBurst));
  const bool aligned = uint64_t(g - buffer->begin) % 512 == 0 && (s.bursts == 1 || s.gmPitch % 512 == 0);
  (atomic ? pm.counters.atomic_bytes : pm.counters.gm_write_bytes) += bytes;
  pm.counters.mte3_copies += 1;
  pm.End(Pipe::MTE3, pm.DmaCycles(atomic ? bytes * cost::atomic_cost_factor : bytes, aligned));
}

}  // namespace sim

// GM -> UB, `count` elements (a multiple of 32 bytes).
template <typename T>
void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, uint32_t count) {
  const uint64_t bytes = uint64_t(count) * sizeof(T);
  if (bytes % sim::kBlock != 0) sim::FailLength("DataCopy(GM->UB)", bytes);
  if (bytes == 0) return;
  sim::CopyGmToUb(dst, src, sim::CopyShape{1, bytes, bytes, bytes, bytes}, false, "DataCopy(GM->UB)");
}

// UB -> GM, `count` elements (an atomic add when SetAtomicAdd is active).
template <typename T>
void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, uint32_t count) {
  const uint64_t bytes = uint64_t(count) * sizeof(T);
  if (bytes % sim::kBlock != 0) sim::FailLength("DataCopy(UB->GM)", bytes);
  if (bytes == 0) return;
  sim::CopyUbToGm(dst, src, sim::CopyShape{1, bytes, bytes, bytes, bytes}, "DataCopy(UB->GM)");
}

// GM -> UB, blockCount bursts of blockLen 32-byte blocks; gaps in 32-byte blocks.
template <typename T>
void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyParams& p) {
  const char* what = "DataCopy(GM->UB)";
  if (!sim::CheckCopyParams(what, p.blockCount, p.blockLen, p.srcStride, p.dstStride, true, 0)) return;
  const uint64_t burst = uint64_t(p.blockLen) * sim::kBlock;
  sim::CopyGmToUb(dst, src,
                  sim::CopyShape{p.blockCount, burst, burst + uint64_t(p.srcStride) * sim::kBlock, burst,
                                 burst + uint64_t(p.dstStride) * sim::kBlock},
                  false, what);
}

// UB -> GM with DataCopyParams.
template <typename T>
void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyParams& p) {
  const char* what = "DataCopy(UB->GM)";
  if (!sim::CheckCopyParams(what, p.blockCount, p.blockLen, p.srcStride, p.dstStride, true, 0)) return;
  const uint64_t burst = uint64_t(p.blockLen) * sim::kBlock;
  sim::CopyUbToGm(dst, src,
                  sim::CopyShape{p.blockCount, burst, burst + uint64_t(p.dstStride) * sim::kBlock, burst,
                                 burst + uint64_t(p.srcStride) * sim::kBlock},
                  what);
}

// GM -> UB of any byte length: each burst lands at a 32-byte boundary; the rest of its last block
// is undefined.
template <typename T>
void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyExtParams& p,
                 const DataCopyPadExtParams<T>& pad) {
  const char* what = "DataCopyPad(GM->UB)";
  if (pad.isPad) sim::Fail(std::string(what) + ": padding is not modelled");
  if (!sim::CheckCopyParams(what, p.blockCount, p.blockLen, 0, 0, false, 2097151)) return;
  if (p.blockLen % sizeof(T) != 0) sim::Fail(std::string(what) + ": blockLen is not a whole number of elements");
  const uint64_t padded = sim::Align32(p.blockLen);
  sim::CopyGmToUb(dst, src,
                  sim::CopyShape{p.blockCount, p.blockLen, uint64_t(p.blockLen) + p.srcStride, padded,
                                 padded + uint64_t(p.dstStride) * sim::kBlock},
                  true, what);
}

// UB -> GM of any byte length.
template <typename T>
void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& p) {
  const char* what = "DataCopyPad(UB->GM)";
  if (!sim::CheckCopyParams(what, p.blockCount, p.blockLen, 0, 0, false, 2097151)) return;
  if (p.blockLen % sizeof(T) != 0) sim::Fail(std::string(what) + ": blockLen is not a whole number of elements");
  const uint64_t padded = sim::Align32(p.blockLen);
  sim::CopyUbToGm(dst, src,
                  sim::CopyShape{p.blockCount, p.blockLen, uint64_t(p.blockLen) + p.dstStride, p.blockLen,
                                 padded + uint64_t(p.srcStride) * sim::kBlock},
                  what);
}

}  // namespace AscendC

#endif  // MXDCN_SIM_DATA_COPY_H
