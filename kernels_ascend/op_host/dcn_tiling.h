// Tiling of the mx_dcn sampling kernels (im2col and col2im) for Atlas A2 vector cores.
//
// Plain C++11, no CANN headers: the CANN tiling entry (op_host/mx_dcn_ops.cpp), the CPU model
// (sim/) and the tests all call ComputeDcnTiling, so the numbers a kernel runs with on the device
// are the numbers tested here. mx_dcn/backends/ascendc/tiling.py mirrors this file in Python (tested
// field by field against it over a sweep of shapes).
//
// Work split: a launch covers `pixelCount` output pixels (flattened n*Ho*Wo, starting at global
// pixel `pixelStart`). Block b gets pixelsPerBlock pixels, plus one if b < pixelsRemainder, as a
// contiguous range. Inside a block, pixels go through UB in tiles of up to `tilePixels` pixels of
// one output row: the sampling plan of a tile (coordinates, weights, classes of all its taps) is
// computed with vector instructions; the image pixels its samples read come in one DataCopy of a
// window (winRows x winCols pixels, all channels) around the tile's footprint, double-buffered;
// samples outside the window fetch their four corners on their own (staging slots). The deterministic
// col2im adds grad_x per input row band owned by one block (bandRows rows at a time). The buffers
// and their sizes: DcnUbBytes (the kernels' InitBuffer calls, in order).
#ifndef MXDCN_DCN_TILING_H
#define MXDCN_DCN_TILING_H

#include <cstdint>

#include "../op_kernel/dcn_tiling_data.h"

namespace mxdcn {

enum class KernelKind : uint32_t { kIm2col = 0, kCol2im = 1 };

// The shapes of one launch. Coordinates follow docs/design.md; x is NHWC, offset (N, 2K, Ho, Wo) with
// channels (k, [dy, dx]), mask (N, K, Ho, Wo), columns (P, K, C) where P counts the launch's pixels.
struct DcnShape {
  uint64_t n, h, w, c, ho, wo, kh, kw;
  uint64_t strideH, strideW, padH, padW, dilationH, dilationW;
  bool hasMask;
  bool deterministic;   // col2im: grad_x summed in a fixed order (im2col ignores it)
  uint32_t columnsType; // im2col: kColumnsFloat / Half / Bf16 (col2im ignores it)
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
  kCoordinateTooLarge,   // H + 2 padH or W + 2 padW >= 2^24: integer sample positions no longer exact in fp32
  kChannelStride,        // C / 8 blocks, a vector repeat stride over channel rows, exceeds 255
  kUbTooSmall,           // one tile's buffers (or one band row of the deterministic grad_x) exceed UB
  kNoCores,
  kTooManyTaps,          // more than 255 kernel taps: a repeat count over taps exceeds 255
  kRowStride,            // (W - 1) * C / 8 blocks, the gap of a corner copy, exceeds 65535
  kColumnsType,          // columnsType is none of kColumnsFloat / Half / Bf16
};

struct TilingResult {
  TilingStatus status;
  DcnTilingData data;
};

// UB bytes a kernel of `kind` allocates with the tile fields of `d` (its InitBuffer calls, in order).
uint64_t DcnUbBytes(KernelKind kind, const DcnTilingData& d);

TilingResult ComputeDcnTiling(KernelKind kind, const DcnShape& shape, const PlatformFacts& platform);

const char* DcnTilingMessage(TilingStatus status);

}  // namespace mxdcn

#endif  // MXDCN_DCN_TILING_H
