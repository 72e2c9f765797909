// Tiling of the mx_dcn sampling kernels (im2col and col2im) for Atlas A2 vector cores.
//
// Plain C++11, no CANN headers: the CANN tiling entry (op_host/mx_dcn_ops.cpp), the CPU model
// (sim/) and the tests all call ComputeDcnTiling, so the numbers a kernel runs with on the device
// are the numbers tested here. mx_dcn/backends/ascendc/tiling.py mirrors this file in Python (tested
// field by field against it over a sweep of shapes).
//
// Work split: a launch covers `pixelCount` output pixels (flattened n*Ho*Wo, starting at global
// pixel `pixelStart`). Block b gets pixelsPerBlock pixels, plus one if b < pixelsRemainder, as a
// contiguous range. Inside a block, pixels go through UB in tiles of `tilePixels` (their offsets and
// masks are loaded at once) and channels in chunks of `cTile` (a multiple of 64 floats = one vector
// repeat of 256 bytes).
#ifndef MXDCN_DCN_TILING_H
#define MXDCN_DCN_TILING_H

#include <cstdint>

#include "../op_kernel/dcn_tiling_data.h"

namespace mxdcn {

enum class KernelKind : uint32_t { kIm2col = 0, kCol2im = 1 };

// The shapes of one launch. Coordinates follow docs/design.md; x is NHWC, offset (P, K, 2) [dy, dx],
// mask (P, K), columns (P, K, C) where P counts the launch's pixels.
struct DcnShape {
  uint64_t n, h, w, c, ho, wo, kh, kw;
  uint64_t strideH, strideW, padH, padW, dilationH, dilationW;
  bool hasMask;
  uint64_t pixelStart, pixelCount;
};

struct PlatformFacts {
  uint32_t coreNum;   // vector cores to spread the blocks over (GetCoreNumAiv on the device)
  uint32_t ubBytes;   // usable Unified Buffer per core
};

// Why a launch cannot be tiled; kOk when it can. Messages: DcnTilingMessage.
enum class TilingStatus : uint32_t {
  kOk = 0,
  kChannelsNotMultipleOf64,
  kEmpty,
  kFieldOverflow,        // a shape value does not fit the kernel's 32-bit fields
  kCoordinateTooLarge,   // H or W >= 2^24: integer sample positions no longer exact in fp32
  kChannelStride,        // a DataCopy gap over channels exceeds the 16-bit stride field
  kUbTooSmall,           // one pixel's offsets and masks plus the minimum channel chunk exceed UB
  kNoCores,
};

struct TilingResult {
  TilingStatus status;
  DcnTilingData data;
};

// UB bytes a kernel of `kind` allocates for the given tile sizes (matches its InitBuffer calls).
uint32_t DcnUbBytes(KernelKind kind, uint32_t tilePixels, uint32_t cTile, uint32_t taps, bool hasMask);

TilingResult ComputeDcnTiling(KernelKind kind, const DcnShape& shape, const PlatformFacts& platform);

const char* DcnTilingMessage(TilingStatus status);

}  // namespace mxdcn

#endif  // MXDCN_DCN_TILING_H
