// Core of the AscendC CPU model: errors, the pipes of a vector core, the GM buffers of a launch, the
// state of the running block and the block driver. Part of kernel_operator.h (see there).
#ifndef MXDCN_SIM_MODEL_CORE_H
#define MXDCN_SIM_MODEL_CORE_H

namespace AscendC {
namespace sim {

constexpr uint32_t kUbCapacity = 192 * 1024;   // Unified Buffer of an Atlas A2 vector core
// What a kernel may allocate of it: AscendC keeps 8 KiB for some of its APIs (unless compiled with
// --cce-disable-asc-reserved-ubuf) and 256 bytes in mixed cube/vector kernels: 192 KiB - 256 B - 8 KiB
// (docs/zh/guide/编程指南/高级编程/硬件实现/架构规格/NPU架构版本2201.md, the storage table and its note).
constexpr uint32_t kUbUsable = kUbCapacity - 256 - 8 * 1024;
constexpr uint32_t kBlock = 32;                // UB / DataCopy granule (通用说明和约束.md, table 2)
constexpr uint32_t kUbBlocks = kUbCapacity / kBlock;
constexpr uint32_t kRepeatBytes = 256;         // one vector repeat: 8 blocks of 32 bytes

struct ModelError : std::runtime_error {
  explicit ModelError(const std::string& what) : std::runtime_error(what) {}
};

[[noreturn]] void Fail(const std::string& rule);

inline std::string Str(uint64_t v) { return std::to_string(v); }

// The four pipes of a vector core: scalar, vector, MTE2 (GM -> UB), MTE3 (UB -> GM)
// (docs/zh/api/SIMD-API/基础API/同步控制/核内同步/核内同步能力概述.md, table 1).
enum class Pipe : uint8_t { S = 0, V = 1, MTE2 = 2, MTE3 = 3 };
constexpr int kPipes = 4;
const char* PipeName(Pipe p);

// --------------------------------------------------------------------------- GM buffers of a launch

enum class GmMode { kInput, kOutput, kAccumulate };

struct GmBuffer {
  const uint8_t* begin;
  uint64_t bytes;
  std::string name;
  GmMode mode;
  // kOutput: per 4-byte word, the block that wrote it (bits 24..31) and that block's MTE3/S
  // instruction number (bits 0..23); kNoOwner when unwritten. Finds two blocks writing one element
  // and one block rewriting it without ordering the two writes.
  std::vector<uint32_t> owner;
  // Ordering of the running block's accesses to this buffer, per pipe: the last instruction number
  // that wrote / read any of it (GM hazards are tracked per buffer, UB ones per 32-byte block).
  uint32_t lastWrite[kPipes];
  uint32_t lastRead[kPipes];
};
constexpr uint32_t kNoOwner = 0xFFFFFFFFu;

// GM buffers a kernel may touch; RunKernel's caller registers them for the duration of a launch.
class GmRegistry {
 public:
  static GmRegistry& instance();
  void Add(const void* p, uint64_t bytes, const std::string& name, GmMode mode);
  void Clear();
  // The buffer holding [p, p + bytes) or a ModelError naming `what`.
  GmBuffer& Find(const void* p, uint64_t bytes, const char* what);
  void ResetOrdering();   // a new block starts: no pipe has touched any buffer yet
 private:
  std::vector<GmBuffer> buffers_;
};

// --------------------------------------------------------------------------- the running block

struct Core {
  uint32_t blockIdx = 0;
  uint32_t blockNum = 1;
  uint32_t atomicElemSize = 0;   // 0: atomic add off; else sizeof(T) of SetAtomicAdd<T>
  uint32_t ubCapacity = kUbUsable;
  uint32_t ubPeak = 0;
  std::string deferredError;     // found in a destructor; RunKernel raises it
  std::vector<uint8_t> ub = std::vector<uint8_t>(kUbCapacity + 64);
  uint8_t* UbBase() {
    uintptr_t p = reinterpret_cast<uintptr_t>(ub.data());
    return reinterpret_cast<uint8_t*>((p + 63) / 64 * 64);
  }
};
Core& core();

// Records a rule broken inside a destructor (which must not throw); RunKernel raises the first one.
void Defer(const std::string& rule);

// The order in which RunKernel runs the blocks of a launch (on the device they run in parallel, so
// a kernel's results must not depend on it -- except for the order of atomic float additions).
enum class BlockOrder : int { kAscending = 0, kReversed = 1, kShuffled = 2 };
void SetBlockOrder(BlockOrder order, uint64_t seed);
const std::vector<uint32_t>& LastBlockOrder();

// Runs `kernel` once per block index 0..blockDim-1 in the chosen order, each block with a fresh UB
// and fresh pipe state; adds the block index to any ModelError. Afterwards LastCounters() holds
// what every block did (counters.h).
void RunKernel(uint32_t blockDim, const std::function<void()>& kernel);

inline void LoadTiling(void* dst, size_t bytes, const uint8_t* tiling) { std::memcpy(dst, tiling, bytes); }

}  // namespace sim

inline uint32_t GetBlockIdx() { return sim::core().blockIdx; }
inline uint32_t GetBlockNum() { return sim::core().blockNum; }

}  // namespace AscendC

#endif  // MXDCN_SIM_MODEL_CORE_H
