// C ABI over the CPU model, for Python (ctypes) and the C++ tests: runs the real kernel sources of
// op_kernel/ for every block index, with the tiling computed by op_host/dcn_tiling.cpp, and reports
// what each block did (counters) and the cost figures of the time estimate.
// Every launch function returns 0 on success; on failure it returns non-zero and writes the model's
// message into `err` (NUL-terminated, truncated to `errLen`).
#include <cstdio>
#include <string>

#include "dcn_tiling.h"
#include "kernel_operator.h"

extern "C" void mx_dcn_im2col(GM_ADDR x, GM_ADDR offset, GM_ADDR mask, GM_ADDR columns, GM_ADDR workspace,
                              GM_ADDR tiling);
extern "C" void mx_dcn_col2im(GM_ADDR x, GM_ADDR offset, GM_ADDR mask, GM_ADDR gradColumns, GM_ADDR gradX,
                              GM_ADDR gradOffset, GM_ADDR gradMask, GM_ADDR workspace, GM_ADDR tiling);

namespace {

using AscendC::sim::GmMode;
using AscendC::sim::GmRegistry;

constexpr int kShapeFields = 19;   // n h w c ho wo kh kw sH sW pH pW dH dW hasMask deterministic columnsType
                                   // pixelStart pixelCount

mxdcn::DcnShape ShapeFrom(const uint64_t* s) {
  mxdcn::DcnShape d;
  d.n = s[0]; d.h = s[1]; d.w = s[2]; d.c = s[3]; d.ho = s[4]; d.wo = s[5]; d.kh = s[6]; d.kw = s[7];
  d.strideH = s[8]; d.strideW = s[9]; d.padH = s[10]; d.padW = s[11]; d.dilationH = s[12]; d.dilationW = s[13];
  d.hasMask = s[14] != 0; d.deterministic = s[15] != 0; d.columnsType = uint32_t(s[16]);
  d.pixelStart = s[17]; d.pixelCount = s[18];
  return d;
}

void Report(const std::string& message, char* err, int errLen) {
  if (err != nullptr && errLen > 0) std::snprintf(err, size_t(errLen), "%s", message.c_str());
}

const AscendC::sim::cost::Figure* FigureAt(int i) {
  return i >= 0 && i < AscendC::sim::cost::FigureCount() ? &AscendC::sim::cost::Figures()[i] : nullptr;
}

uint32_t g_lastUbPeak = 0;
uint32_t g_lastBlockDim = 0;

// Registers the GM buffers, runs `launch` on every block, always clears the registry.
template <typename F>
int Guarded(char* err, int errLen, F body) {
  try {
    body();
    GmRegistry::instance().Clear();
    return 0;
  } catch (const std::exception& e) {
    GmRegistry::instance().Clear();
    Report(e.what(), err, errLen);
    return 1;
  }
}

bool Tile(mxdcn::KernelKind kind, const uint64_t* shape, uint32_t coreNum, uint32_t ubBytes,
          mxdcn::DcnTilingData& data, char* err, int errLen) {
  mxdcn::PlatformFacts platform{coreNum, ubBytes};
  mxdcn::TilingResult r = mxdcn::ComputeDcnTiling(kind, ShapeFrom(shape), platform);
  if (r.status != mxdcn::TilingStatus::kOk) {
    Report(std::string("tiling: ") + mxdcn::DcnTilingMessage(r.status), err, errLen);
    return false;
  }
  data = r.data;
  return true;
}

}  // namespace

extern "C" {

int mxdcn_sim_shape_fields() { return kShapeFields; }

// Field names of the tiling struct, comma-separated, in order.
const char* mxdcn_sim_tiling_field_names() {
#define MXDCN_NAME(name) #name ","
  static const char names[] = MXDCN_TILING_FIELDS(MXDCN_NAME);
#undef MXDCN_NAME
  return names;
}

// Runs the tiling function: returns its status code (0 ok); fills `out` (uint32 fields in order).
int mxdcn_sim_tiling(int kind, const uint64_t* shape, uint32_t coreNum, uint32_t ubBytes, uint32_t* out,
                     char* err, int errLen) {
  mxdcn::PlatformFacts platform{coreNum, ubBytes};
  mxdcn::TilingResult r = mxdcn::ComputeDcnTiling(static_cast<mxdcn::KernelKind>(kind), ShapeFrom(shape), platform);
  std::memcpy(out, &r.data, sizeof(r.data));
  Report(mxdcn::DcnTilingMessage(r.status), err, errLen);
  return static_cast<int>(r.status);
}

uint32_t mxdcn_sim_last_ub_peak() { return g_lastUbPeak; }
uint32_t mxdcn_sim_last_block_dim() { return g_lastBlockDim; }

// Counters of the last launch: names (comma-separated) and, per block index, Count() values.
const char* mxdcn_sim_counter_names() { return AscendC::sim::Counters::Names(); }
int mxdcn_sim_counter_count() { return AscendC::sim::Counters::Count(); }
// Fills `out` with blocks x counters values (row = block index); returns the number of blocks.
int mxdcn_sim_last_counters(double* out, int maxBlocks) {
  const std::vector<AscendC::sim::Counters>& all = AscendC::sim::LastCounters();
  const int n = static_cast<int>(all.size()) < maxBlocks ? static_cast<int>(all.size()) : maxBlocks;
  for (int b = 0; b < n; ++b) all[size_t(b)].Flatten(out + size_t(b) * size_t(AscendC::sim::Counters::Count()));
  return n;
}

// The order RunKernel runs the blocks in: 0 ascending, 1 reversed, 2 shuffled by `seed`.
int mxdcn_sim_set_block_order(int mode, uint64_t seed) {
  if (mode < 0 || mode > 2) return 1;
  AscendC::sim::SetBlockOrder(static_cast<AscendC::sim::BlockOrder>(mode), seed);
  return 0;
}
// The block indices of the last launch in the order they ran; returns how many.
int mxdcn_sim_last_block_order(uint32_t* out, int maxBlocks) {
  const std::vector<uint32_t>& order = AscendC::sim::LastBlockOrder();
  const int n = static_cast<int>(order.size()) < maxBlocks ? static_cast<int>(order.size()) : maxBlocks;
  for (int i = 0; i < n; ++i) out[i] = order[size_t(i)];
  return n;
}

// The cost figures (include/sim/costs.h): name, value, unit, source of figure i (0 <= i < count;
// nullptr / 0 outside).
int mxdcn_sim_cost_count() { return AscendC::sim::cost::FigureCount(); }
const char* mxdcn_sim_cost_name(int i) { return FigureAt(i) ? FigureAt(i)->name : nullptr; }
double mxdcn_sim_cost_value(int i) { return FigureAt(i) ? FigureAt(i)->value : 0.0; }
const char* mxdcn_sim_cost_unit(int i) { return FigureAt(i) ? FigureAt(i)->unit : nullptr; }
const char* mxdcn_sim_cost_source(int i) { return FigureAt(i) ? FigureAt(i)->source : nullptr; }

int mxdcn_sim_im2col(const float* x, const float* offset, const float* mask, float* columns, const uint64_t* shape,
                     uint32_t coreNum, uint32_t ubBytes, char* err, int errLen) {
  mxdcn::DcnTilingData t;
  if (!Tile(mxdcn::KernelKind::kIm2col, shape, coreNum, ubBytes, t, err, errLen)) return 2;
  return Guarded(err, errLen, [&] {
    const uint64_t taps = uint64_t(t.kh) * t.kw, pixels = t.pixelCount, planes = uint64_t(t.n) * t.ho * t.wo;
    GmRegistry& gm = GmRegistry::instance();
    gm.Add(x, uint64_t(t.n) * t.h * t.w * t.c * 4, "x", GmMode::kInput);
    gm.Add(offset, planes * taps * 2 * 4, "offset", GmMode::kInput);
    if (t.hasMask) gm.Add(mask, planes * taps * 4, "mask", GmMode::kInput);
    gm.Add(columns, pixels * taps * t.c * (t.columnsType == mxdcn::kColumnsFloat ? 4 : 2), "columns", GmMode::kOutput);
    AscendC::sim::RunKernel(t.blockDim, [&] {
      mx_dcn_im2col((GM_ADDR)x, (GM_ADDR)offset, (GM_ADDR)mask, (GM_ADDR)columns, nullptr, (GM_ADDR)&t);
    });
    g_lastUbPeak = AscendC::sim::core().ubPeak;
    g_lastBlockDim = t.blockDim;
  });
}

int mxdcn_sim_col2im(const float* x, const float* offset, const float* mask, const float* gradColumns, float* gradX,
                     float* gradOffset, float* gradMask, const uint64_t* shape, uint32_t coreNum, uint32_t ubBytes,
                     char* err, int errLen) {
  mxdcn::DcnTilingData t;
  if (!Tile(mxdcn::KernelKind::kCol2im, shape, coreNum, ubBytes, t, err, errLen)) return 2;
  return Guarded(err, errLen, [&] {
    const uint64_t taps = uint64_t(t.kh) * t.kw, pixels = t.pixelCount, planes = uint64_t(t.n) * t.ho * t.wo;
    GmRegistry& gm = GmRegistry::instance();
    gm.Add(x, uint64_t(t.n) * t.h * t.w * t.c * 4, "x", GmMode::kInput);
    gm.Add(offset, planes * taps * 2 * 4, "offset", GmMode::kInput);
    if (t.hasMask) gm.Add(mask, planes * taps * 4, "mask", GmMode::kInput);
    gm.Add(gradColumns, pixels * taps * t.c * 4, "grad_columns", GmMode::kInput);
    // Deterministic: every element of grad_x written once, by the block owning its row.
    gm.Add(gradX, uint64_t(t.n) * t.h * t.w * t.c * 4, "grad_x", t.deterministic ? GmMode::kOutput : GmMode::kAccumulate);
    gm.Add(gradOffset, planes * taps * 2 * 4, "grad_offset", GmMode::kOutput);
    if (t.hasMask) gm.Add(gradMask, planes * taps * 4, "grad_mask", GmMode::kOutput);
    AscendC::sim::RunKernel(t.blockDim, [&] {
      mx_dcn_col2im((GM_ADDR)x, (GM_ADDR)offset, (GM_ADDR)mask, (GM_ADDR)gradColumns, (GM_ADDR)gradX,
                    (GM_ADDR)gradOffset, (GM_ADDR)gradMask, nullptr, (GM_ADDR)&t);
    });
    g_lastUbPeak = AscendC::sim::core().ubPeak;
    g_lastBlockDim = t.blockDim;
  });
}

}  // extern "C"
