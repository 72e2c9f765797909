// See dcn_tiling.h. Kept in step with mx_dcn/backends/ascendc/tiling.py (compute_tiling), which a test checks.
#include "dcn_tiling.h"

namespace mxdcn {
namespace {

constexpr uint64_t kU32Max = 0xFFFFFFFFull;
constexpr uint64_t kExactFloatInt = 1ull << 24;   // integers below this are exact in fp32

uint32_t Align32(uint64_t bytes) {
  return static_cast<uint32_t>((bytes + kBlockBytes - 1) / kBlockBytes * kBlockBytes);
}

}  // namespace

uint32_t DcnUbBytes(KernelKind kind, uint32_t tilePixels, uint32_t cTile, uint32_t taps, bool hasMask) {
  const uint64_t offsetBytes = Align32(uint64_t(tilePixels) * taps * 2 * sizeof(float));
  const uint64_t maskBytes = hasMask ? Align32(uint64_t(tilePixels) * taps * sizeof(float)) : 0;
  const uint64_t chunk = uint64_t(cTile) * sizeof(float);
  uint64_t total;
  if (kind == KernelKind::kIm2col) {
    // offsets, masks; 2 x four corner rows (double-buffered input); 2 x one column row (output).
    total = offsetBytes + maskBytes + 2 * 4 * chunk + 2 * chunk;
  } else {
    // offsets, masks in; grad offsets, grad masks out; grad column row; four corner rows; four
    // scaled grad rows for the atomic adds; v / dv/dy / dv/dx rows; a product row; the ReduceSum
    // work area (one float per repeat) and three 32-byte result slots.
    total = 2 * offsetBytes + 2 * maskBytes + chunk + 4 * chunk + 4 * chunk + 3 * chunk + chunk +
            Align32(uint64_t(cTile / kRepeatFloats) * sizeof(float)) + 3 * kBlockBytes;
  }
  return total > kU32Max ? static_cast<uint32_t>(kU32Max) : static_cast<uint32_t>(total);
}

TilingResult ComputeDcnTiling(KernelKind kind, const DcnShape& s, const PlatformFacts& platform) {
  TilingResult r;
  r.status = TilingStatus::kOk;
  r.data = DcnTilingData();
  if (platform.coreNum == 0) { r.status = TilingStatus::kNoCores; return r; }
  if (s.c == 0 || s.c % kRepeatFloats != 0) { r.status = TilingStatus::kChannelsNotMultipleOf64; return r; }
  if (s.pixelCount == 0 || s.n == 0) { r.status = TilingStatus::kEmpty; return r; }
  const uint64_t fields[] = {s.n, s.h, s.w, s.c, s.ho, s.wo, s.kh, s.kw, s.strideH, s.strideW,
                             s.padH, s.padW, s.dilationH, s.dilationW, s.pixelStart, s.pixelCount,
                             s.kh * s.kw, s.pixelStart + s.pixelCount, s.n * s.ho * s.wo};
  for (uint64_t v : fields) {
    if (v > kU32Max) { r.status = TilingStatus::kFieldOverflow; return r; }
  }
  if (s.h + 2 * s.padH >= kExactFloatInt || s.w + 2 * s.padW >= kExactFloatInt) {
    r.status = TilingStatus::kCoordinateTooLarge;
    return r;
  }
  const uint32_t taps = static_cast<uint32_t>(s.kh * s.kw);

  // Channel chunk: as wide as UB allows with a single pixel per tile, at most kMaxRepeat repeats.
  uint64_t cTile = s.c < uint64_t(kMaxRepeat) * kRepeatFloats ? s.c : uint64_t(kMaxRepeat) * kRepeatFloats;
  while (cTile > kRepeatFloats && DcnUbBytes(kind, 1, uint32_t(cTile), taps, s.hasMask) > platform.ubBytes) {
    cTile -= kRepeatFloats;
  }
  if (DcnUbBytes(kind, 1, uint32_t(cTile), taps, s.hasMask) > platform.ubBytes) {
    r.status = TilingStatus::kUbTooSmall;
    return r;
  }
  // The corner-row DataCopy skips the rest of a pixel's channels: a gap of (C - chunk) floats, in
  // 32-byte blocks, in a 16-bit field. The narrowest chunk is 64 floats (the tail of C).
  if (cTile < s.c && (s.c - kRepeatFloats) * sizeof(float) / kBlockBytes > kMaxBlockStride) {
    r.status = TilingStatus::kChannelStride;
    return r;
  }

  const uint64_t blockDim = s.pixelCount < platform.coreNum ? s.pixelCount : platform.coreNum;
  const uint64_t perBlock = s.pixelCount / blockDim;
  const uint64_t remainder = s.pixelCount % blockDim;
  const uint64_t largest = perBlock + (remainder ? 1 : 0);
  uint64_t tile = largest < kMaxTilePixels ? largest : kMaxTilePixels;
  while (tile > 1 && DcnUbBytes(kind, uint32_t(tile), uint32_t(cTile), taps, s.hasMask) > platform.ubBytes) {
    --tile;
  }

  DcnTilingData& d = r.data;
  d.n = uint32_t(s.n); d.h = uint32_t(s.h); d.w = uint32_t(s.w); d.c = uint32_t(s.c);
  d.ho = uint32_t(s.ho); d.wo = uint32_t(s.wo); d.kh = uint32_t(s.kh); d.kw = uint32_t(s.kw);
  d.strideH = uint32_t(s.strideH); d.strideW = uint32_t(s.strideW);
  d.padH = uint32_t(s.padH); d.padW = uint32_t(s.padW);
  d.dilationH = uint32_t(s.dilationH); d.dilationW = uint32_t(s.dilationW);
  d.hasMask = s.hasMask ? 1u : 0u;
  d.pixelStart = uint32_t(s.pixelStart); d.pixelCount = uint32_t(s.pixelCount);
  d.blockDim = uint32_t(blockDim); d.pixelsPerBlock = uint32_t(perBlock);
  d.pixelsRemainder = uint32_t(remainder);
  d.tilePixels = uint32_t(tile); d.cTile = uint32_t(cTile);
  d.ubBytes = DcnUbBytes(kind, d.tilePixels, d.cTile, taps, s.hasMask);
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
      return "the channel count makes a DataCopy gap exceed the 16-bit block-stride field (65535 blocks)";
    case TilingStatus::kUbTooSmall:
      return "one pixel's offsets and masks plus a 64-channel chunk do not fit the 192 KiB Unified Buffer "
             "(too many kernel taps)";
    case TilingStatus::kNoCores: return "the platform reports no vector cores";
  }
  return "unknown tiling status";
}

}  // namespace mxdcn
