// See dcn_tiling.h. Kept in step with mx_dcn/backends/ascendc/tiling.py (compute_tiling), which a test checks.
#include "dcn_tiling.h"

namespace mxdcn {
namespace {

constexpr uint64_t kU32Max = 0xFFFFFFFFull;
constexpr uint64_t kExactFloatInt = 1ull << 24;   // integers below this are exact in fp32
constexpr uint64_t kMaxSlots = 8;                 // staging slots per set (two sets, ping-pong) ...
constexpr uint64_t kStageBytes = 8192;            // ... of at most this many bytes per set
// Most bytes of one column store (im2col) / grad-column load (col2im): im2col stores a tile's rows at
// once where it can; col2im leaves the UB to the windows.
constexpr uint64_t kRowsBytes[2] = {20480, 8192};
// Window margins (rows, columns) around a tile's nominal footprint, best first.
constexpr uint32_t kMargins[][2] = {{3, 4}, {3, 3}, {2, 3}, {2, 2}, {1, 2}, {1, 1}};

uint64_t Align(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }
uint64_t Min(uint64_t a, uint64_t b) { return a < b ? a : b; }
uint64_t Max(uint64_t a, uint64_t b) { return a > b ? a : b; }

// Float arrays of planLen elements the kernel's plan buffer holds (dcn_kernel_common.h: PlanArrays).
uint64_t PlanArrays(KernelKind kind) { return kind == KernelKind::kIm2col ? 17 : 25; }

// Fills the tile fields that follow from T, the margins (window if rows > 0) and the band.
void SetTile(KernelKind kind, DcnTilingData& d, uint64_t tile, uint64_t marginY, uint64_t marginX, bool window,
             uint64_t band) {
  const uint64_t taps = uint64_t(d.kh) * d.kw;
  d.tilePixels = uint32_t(tile);
  d.tileStride = uint32_t(Align(tile, 8));
  d.scanPixels = d.deterministic ? uint32_t(tile) : 0;
  d.planLen = uint32_t(Align(taps * d.tileStride, kRepeatFloats));
  // Sub-tiles of equal size (the tile's taps x pixels rows, at most kRowsBytes or 255 rows each).
  const uint64_t rowsBytes = kRowsBytes[static_cast<uint32_t>(kind)];
  const uint64_t rows = tile * taps, most = Min(kMaxRepeat, Max(1, rowsBytes / (d.c * sizeof(float))));
  const uint64_t parts = (rows + most - 1) / most;
  d.subRows = uint32_t((rows + parts - 1) / parts);
  d.slots = uint32_t(Max(1, Min(kMaxSlots, kStageBytes / (4 * d.c * sizeof(float)))));
  d.marginY = window ? uint32_t(marginY) : 0;
  d.marginX = window ? uint32_t(marginX) : 0;
  d.winRows = window ? uint32_t((d.kh - 1) * uint64_t(d.dilationH) + 2 + 2 * marginY) : 0;
  // + 1: the window's first column may move one left so its copy starts 512-byte aligned.
  d.winCols = window ? uint32_t((tile - 1) * d.strideW + (d.kw - 1) * uint64_t(d.dilationW) + 3 + 2 * marginX) : 0;
  d.bandRows = uint32_t(band);
}

}  // namespace

uint64_t DcnUbBytes(KernelKind kind, const DcnTilingData& d) {
  const uint64_t taps = uint64_t(d.kh) * d.kw, c = d.c, f = sizeof(float);
  const uint64_t params = (d.hasMask ? 3 : 2) * uint64_t(d.planLen) * f;
  const uint64_t window = uint64_t(d.winRows) * d.winCols * c * f;
  const uint64_t rows = uint64_t(d.subRows) * c * f;
  // Both kernels: offsets (and masks) of a tile x 2; the plan arrays; three bit masks; the window x 2;
  // two sets of staging slots, each slot the 2 x 2 corners of one sample.
  uint64_t total = 2 * params + PlanArrays(kind) * d.planLen * f + 3 * Align(d.planLen / 8, kBlockBytes) +
                   2 * window + 2 * uint64_t(d.slots) * 4 * c * f;
  if (kind == KernelKind::kIm2col) {
    // the masks broadcast to 32-byte blocks (one per sample); column rows x 2; fp16/bf16 columns: the
    // rows narrowed to 16 bits x 2.
    total += (d.hasMask ? taps * d.tileStride * kBlockBytes : 0) + 2 * rows + (d.columnsType ? rows : 0);
  } else {
    // grad-column rows x 2; four corner products + 32 partial sums; the corner dot products (8 floats
    // per sample); four gather patterns; the tile's grad offsets (and masks) x 2; then the grad_x
    // accumulator: the window's x 2 (atomic mode) or a band of rows (deterministic mode).
    total += 2 * rows + (4 * c + 32) * f + uint64_t(d.planLen) * 8 * f + 4 * kBlockBytes + 2 * params;
    total += d.deterministic ? uint64_t(d.bandRows) * d.w * c * f : 2 * window;
  }
  return total;
}

TilingResult ComputeDcnTiling(KernelKind kind, const DcnShape& s, const PlatformFacts& platform) {
  TilingResult r;
  r.status = TilingStatus::kOk;
  r.data = DcnTilingData();
  if (platform.coreNum == 0) { r.status = TilingStatus::kNoCores; return r; }
  if (s.c == 0 || s.c % kRepeatFloats != 0) { r.status = TilingStatus::kChannelsNotMultipleOf64; return r; }
  if (s.pixelCount == 0 || s.n == 0) { r.status = TilingStatus::kEmpty; return r; }
  if (s.columnsType > kColumnsBf16) { r.status = TilingStatus::kColumnsType; return r; }
  const uint64_t fields[] = {s.n, s.h, s.w, s.c, s.ho, s.wo, s.kh, s.kw, s.strideH, s.strideW,
                             s.padH, s.padW, s.dilationH, s.dilationW, s.pixelStart, s.pixelCount,
                             s.kh * s.kw, s.pixelStart + s.pixelCount, s.n * s.ho * s.wo, s.ho * s.wo * 8,
                             s.n * s.h};
  for (uint64_t v : fields) {
    if (v > kU32Max) { r.status = TilingStatus::kFieldOverflow; return r; }
  }
  if (s.h + 2 * s.padH >= kExactFloatInt || s.w + 2 * s.padW >= kExactFloatInt) {
    r.status = TilingStatus::kCoordinateTooLarge;
    return r;
  }
  const uint64_t taps = s.kh * s.kw;
  if (taps > kMaxRepeat) { r.status = TilingStatus::kTooManyTaps; return r; }
  if (s.c / 8 > kMaxRepeat) { r.status = TilingStatus::kChannelStride; return r; }
  if ((s.w - 1) * s.c / 8 > kMaxBlockStride) { r.status = TilingStatus::kRowStride; return r; }

  DcnTilingData& d = r.data;
  d.n = uint32_t(s.n); d.h = uint32_t(s.h); d.w = uint32_t(s.w); d.c = uint32_t(s.c);
  d.ho = uint32_t(s.ho); d.wo = uint32_t(s.wo); d.kh = uint32_t(s.kh); d.kw = uint32_t(s.kw);
  d.strideH = uint32_t(s.strideH); d.strideW = uint32_t(s.strideW);
  d.padH = uint32_t(s.padH); d.padW = uint32_t(s.padW);
  d.dilationH = uint32_t(s.dilationH); d.dilationW = uint32_t(s.dilationW);
  d.hasMask = s.hasMask ? 1u : 0u;
  d.deterministic = (kind == KernelKind::kCol2im && s.deterministic) ? 1u : 0u;
  d.columnsType = kind == KernelKind::kIm2col ? s.columnsType : kColumnsFloat;
  d.pixelStart = uint32_t(s.pixelStart); d.pixelCount = uint32_t(s.pixelCount);
  const uint64_t blockDim = Min(s.pixelCount, platform.coreNum);
  d.blockDim = uint32_t(blockDim);
  d.pixelsPerBlock = uint32_t(s.pixelCount / blockDim);
  d.pixelsRemainder = uint32_t(s.pixelCount % blockDim);
  const uint64_t largest = d.pixelsPerBlock + (d.pixelsRemainder ? 1 : 0);
  const uint64_t first = Max(1, Min(Min(kMaxTilePixels, s.wo), largest));

  // Deterministic col2im: each block owns ceil(N*H / blockDim) input rows and adds their grad_x in
  // bands of rows, each band one walk over the launch: all its rows in one band if they fit half the
  // UB, else one row while the tile is chosen and as many as the rest of the UB holds after.
  const uint64_t owned = (s.n * s.h + blockDim - 1) / blockDim, rowBytes = s.w * s.c * sizeof(float);
  const uint64_t wholeBand = Min(owned, platform.ubBytes / 2 / rowBytes);
  bool fits = false;
  for (int attempt = 0; attempt < 2 && !fits; ++attempt) {
    const uint64_t band = !d.deterministic ? 0 : (attempt == 0 && wholeBand == owned) ? owned : 1;
    if (attempt == 1 && band != 1) break;
    // A window with the widest margins that fits, for the widest tile (down to a quarter of it) ...
    for (const auto& m : kMargins) {
      for (uint64_t tile = first; !fits && tile >= Max(1, first / 4); tile /= 2) {
        SetTile(kind, d, tile, m[0], m[1], true, band);
        fits = DcnUbBytes(kind, d) <= platform.ubBytes;
        if (tile == 1) break;
      }
      if (fits) break;
    }
    // ... or none: every sample fetches its corners on its own.
    for (uint64_t tile = first; !fits && tile >= 1; tile /= 2) {
      SetTile(kind, d, tile, 0, 0, false, band);
      fits = DcnUbBytes(kind, d) <= platform.ubBytes;
      if (tile == 1) break;
    }
  }
  if (fits) {
    // UB left over: wider tiles for the deterministic walk over the launch (it reads no window; the
    // plan arrays grow to hold them), more staging slots per round (fewer MTE2 -> V hand-offs), the band.
    const uint32_t tileStride = d.tileStride, planLen = d.planLen, scan = d.scanPixels;
    for (uint64_t wide = Min(kMaxTilePixels, s.wo); d.deterministic && wide > scan; wide /= 2) {
      d.scanPixels = uint32_t(wide);
      d.planLen = uint32_t(Align(uint64_t(d.kh) * d.kw * Max(tileStride, Align(wide, 8)), kRepeatFloats));
      if (DcnUbBytes(kind, d) <= platform.ubBytes) break;
      d.scanPixels = scan;
      d.planLen = planLen;
    }
    while (d.slots < kMaxSlots) {
      ++d.slots;
      if (DcnUbBytes(kind, d) > platform.ubBytes) { --d.slots; break; }
    }
    if (d.deterministic) {
      d.bandRows = uint32_t(Min(owned, d.bandRows + (platform.ubBytes - DcnUbBytes(kind, d)) / rowBytes));
    }
    d.ubBytes = uint32_t(DcnUbBytes(kind, d));
    return r;
  }
  r.status = TilingStatus::kUbTooSmall;
  r.data = DcnTilingData();
  return r;
}

const char* DcnTilingMessage(TilingStatus status) {
  switch (status) {
    case TilingStatus::kOk: return "ok";
    case TilingStatus::kChannelsNotMultipleOf64: return "the channel count must be a positive multiple of 64";
    case TilingStatus::kEmpty: return "nothing to compute (no output pixels)";
    case TilingStatus::kFieldOverflow: return "a size exceeds the kernel's 32-bit tiling fields";
    case TilingStatus::kCoordinateTooLarge:
      return "H + 2*pad or W + 2*pad reaches 2^24: sample positions would not be exact in fp32";
    case TilingStatus::kChannelStride:
      return "more than 2040 channels: a vector repeat stride over channel rows (C/8 blocks) exceeds its 8-bit field";
    case TilingStatus::kUbTooSmall:
      return "one tile's buffers (or one row of the deterministic grad_x band) do not fit the Unified Buffer "
             "(192 KiB less what AscendC reserves: too many channels or kernel taps)";
    case TilingStatus::kNoCores: return "the platform reports no vector cores";
    case TilingStatus::kTooManyTaps: return "more than 255 kernel taps: a repeat count over the taps exceeds 255";
    case TilingStatus::kColumnsType: return "the columns' element type must be float32, float16 or bfloat16";
    case TilingStatus::kRowStride:
      return "(W - 1) * C / 8 exceeds 65535: the gap of a corner copy over an image row exceeds the 16-bit field";
  }
  return "unknown tiling status";
}

}  // namespace mxdcn
