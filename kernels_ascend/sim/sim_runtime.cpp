// The stateful part of the AscendC CPU model (see include/kernel_operator.h): errors, GM registry,
// the block driver and its block order, the counters of the last launch, the cost table.
#include <algorithm>
#include <random>

#include "kernel_operator.h"

namespace AscendC {
namespace sim {

void Fail(const std::string& rule) { throw ModelError("AscendC model: " + rule); }

void FailLength(const char* what, uint64_t bytes) {
  Fail(std::string(what) + ": length " + Str(bytes) + " bytes is not a multiple of 32 bytes "
       "(DataCopy moves whole 32-byte blocks; use DataCopyPad for other lengths)");
}

const char* PipeName(Pipe p) {
  static const char* names[kPipes] = {"S", "V", "MTE2", "MTE3"};
  return names[static_cast<int>(p)];
}

const char* PositionName(TPosition pos) {
  switch (pos) {
    case TPosition::VECIN: return "VECIN";
    case TPosition::VECOUT: return "VECOUT";
    case TPosition::VECCALC: return "VECCALC";
    default: return "?";
  }
}

Core& core() {
  static Core c;
  return c;
}

void Defer(const std::string& rule) {
  if (core().deferredError.empty()) core().deferredError = rule;
}

// --------------------------------------------------------------------------- GM registry

GmRegistry& GmRegistry::instance() {
  static GmRegistry r;
  return r;
}

void GmRegistry::Add(const void* p, uint64_t bytes, const std::string& name, GmMode mode) {
  GmBuffer b{static_cast<const uint8_t*>(p), bytes, name, mode, {}, {}, {}};
  if (mode == GmMode::kOutput) b.owner.assign((bytes + 3) / 4, kNoOwner);
  buffers_.push_back(std::move(b));
}

void GmRegistry::Clear() { buffers_.clear(); }

void GmRegistry::ResetOrdering() {
  for (GmBuffer& b : buffers_) {
    std::fill(b.lastWrite, b.lastWrite + kPipes, 0u);
    std::fill(b.lastRead, b.lastRead + kPipes, 0u);
  }
}

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

// --------------------------------------------------------------------------- counters, costs

const char* Counters::Names() {
  static const std::string names = [] {
    std::string s;
#define MXDCN_SIM_COUNTER_NAME(name) s += #name ",";
    MXDCN_SIM_COUNTERS(MXDCN_SIM_COUNTER_NAME)
#undef MXDCN_SIM_COUNTER_NAME
#define MXDCN_SIM_WAIT_NAME(name, src, dst) s += "waits_" #name ",";
    MXDCN_SIM_EVENTS(MXDCN_SIM_WAIT_NAME)
#undef MXDCN_SIM_WAIT_NAME
    return s;
  }();
  return names.c_str();
}

int Counters::Count() {
  int n = 0;
#define MXDCN_SIM_COUNT_ONE(name) ++n;
  MXDCN_SIM_COUNTERS(MXDCN_SIM_COUNT_ONE)
#undef MXDCN_SIM_COUNT_ONE
  return n + kEventKinds;
}

void Counters::Flatten(double* out) const {
#define MXDCN_SIM_COUNTER_OUT(name) *out++ = name;
  MXDCN_SIM_COUNTERS(MXDCN_SIM_COUNTER_OUT)
#undef MXDCN_SIM_COUNTER_OUT
  for (int k = 0; k < kEventKinds; ++k) *out++ = waits[k];
}

namespace {
std::vector<Counters> g_counters;
std::vector<uint32_t> g_order;
BlockOrder g_orderMode = BlockOrder::kAscending;
uint64_t g_orderSeed = 0;
}  // namespace

const std::vector<Counters>& LastCounters() { return g_counters; }

namespace cost {
const Figure* Figures() {
#define MXDCN_SIM_COST_ROW(name, value, unit, source) {#name, value, unit, source},
  static const Figure figures[] = {MXDCN_SIM_COSTS(MXDCN_SIM_COST_ROW)};
#undef MXDCN_SIM_COST_ROW
  return figures;
}
int FigureCount() {
  int n = 0;
#define MXDCN_SIM_COST_COUNT(name, value, unit, source) ++n;
  MXDCN_SIM_COSTS(MXDCN_SIM_COST_COUNT)
#undef MXDCN_SIM_COST_COUNT
  return n;
}
}  // namespace cost

// --------------------------------------------------------------------------- the block driver

void SetBlockOrder(BlockOrder order, uint64_t seed) {
  g_orderMode = order;
  g_orderSeed = seed;
}

const std::vector<uint32_t>& LastBlockOrder() { return g_order; }

void RunKernel(uint32_t blockDim, const std::function<void()>& kernel) {
  Core& c = core();
  c.blockNum = blockDim;
  c.ubPeak = 0;
  g_order.resize(blockDim);
  for (uint32_t b = 0; b < blockDim; ++b) g_order[b] = b;
  if (g_orderMode == BlockOrder::kReversed) std::reverse(g_order.begin(), g_order.end());
  if (g_orderMode == BlockOrder::kShuffled) std::shuffle(g_order.begin(), g_order.end(), std::mt19937_64(g_orderSeed));
  g_counters.assign(blockDim, Counters());
  for (uint32_t b : g_order) {
    c.blockIdx = b;
    c.atomicElemSize = 0;
    c.deferredError.clear();
    GmRegistry::instance().ResetOrdering();
    PipeModel& pm = pipes();
    pm.Reset(blockDim);
    try {
      kernel();
      if (!c.deferredError.empty()) Fail(c.deferredError);
      if (c.atomicElemSize != 0) Fail("the kernel returned with SetAtomicAdd still active (SetAtomicNone missing)");
      const std::string pending = pm.PendingEvents();
      if (!pending.empty()) {
        Fail("the kernel returned with " + pending + " never waited for: an unpaired SetFlag (SetFlag/WaitFlag "
             "must pair, docs/zh/api/SIMD-API/基础API/同步控制/核内同步/SetFlag-WaitFlag.md)");
      }
    } catch (const ModelError& e) {
      c.atomicElemSize = 0;
      c.deferredError.clear();
      throw ModelError(std::string(e.what()) + " [block " + Str(b) + " of " + Str(blockDim) + "]");
    }
    pm.counters.cycles = pm.EndTime();
    g_counters[b] = pm.counters;
  }
}

}  // namespace sim
}  // namespace AscendC
