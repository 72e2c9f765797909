// The tiling struct of the mx_dcn sampling kernels, shared by the kernels (which read it through
// REGISTER_TILING_DEFAULT / GET_TILING_DATA), the host tiling (op_host/dcn_tiling.cpp), the CPU
// model and the tests. Kernel-safe: a plain struct and constants only.
#ifndef MXDCN_DCN_TILING_DATA_H
#define MXDCN_DCN_TILING_DATA_H

#include <cstdint>

// The fields in order; the struct below and the model's C ABI (field names) expand this one list.
// Shape: n h w c ho wo kh kw, stride / padding / dilation (h, w), hasMask, deterministic (col2im:
// grad_x summed in a fixed order), columnsType (im2col: the columns' element type, kColumnsFloat /
// Half / Bf16), the launch's pixels [pixelStart, pixelStart + pixelCount).
// Split: blockDim blocks of pixelsPerBlock pixels (+1 for the first pixelsRemainder).
// Tiles: tilePixels (T) pixels of one output row at a time; tileStride = T rounded up to 8 (the
// padded row of one tap in the plan arrays); planLen = taps * tileStride rounded up to 64 (the
// length of every plan array); subRows rows (pixel, tap) of C floats per column store (im2col) /
// grad-column load (col2im); slots staging slots per set for samples fetched on their own; the window of x (winRows
// x winCols pixels of all channels, margins marginY / marginX around a tile's nominal footprint;
// 0 rows: no window); bandRows input rows per pass of the deterministic grad_x, scanPixels pixels per
// tile of its walk over the launch (no window: as wide as the plan arrays allow); ubBytes in all.
#define MXDCN_TILING_FIELDS(F)                                                       \
  F(n) F(h) F(w) F(c) F(ho) F(wo) F(kh) F(kw)                                     \
  F(strideH) F(strideW) F(padH) F(padW) F(dilationH) F(dilationW) F(hasMask)     \
  F(deterministic) F(columnsType) F(pixelStart) F(pixelCount) F(blockDim)        \
  F(pixelsPerBlock)                                                               \
  F(pixelsRemainder) F(tilePixels) F(tileStride) F(planLen) F(subRows) F(slots) \
  F(marginY) F(marginX) F(winRows) F(winCols) F(bandRows) F(scanPixels) F(ubBytes)

namespace mxdcn {

// Hardware facts of Atlas A2 vector cores that the kernels depend on.
constexpr uint32_t kBlockBytes = 32;          // DataCopy granule; UB addresses align to it
constexpr uint32_t kRepeatFloats = 64;        // one vector repeat: 256 bytes of fp32
constexpr uint32_t kMaxRepeat = 255;          // repeatTimes and repeat strides are 8-bit fields
constexpr uint32_t kMaxBlockStride = 65535;   // DataCopy gaps / block strides are 16-bit fields
// The UB a kernel may allocate: 192 KiB less the 256 B + 8 KiB AscendC reserves (NPU架构版本2201.md).
constexpr uint32_t kDefaultUbBytes = 192 * 1024 - 256 - 8 * 1024;
constexpr uint32_t kMaxTilePixels = 32;       // pixels of one output row per tile
// Element types of the columns im2col writes: fp32, or fp16 / bf16 for the cube when the inputs are.
constexpr uint32_t kColumnsFloat = 0, kColumnsHalf = 1, kColumnsBf16 = 2;

// All uint32_t: the kernel reads them as such.
#define MXDCN_DECLARE_FIELD(name) uint32_t name;
struct DcnTilingData {
  MXDCN_TILING_FIELDS(MXDCN_DECLARE_FIELD)
};
#undef MXDCN_DECLARE_FIELD

}  // namespace mxdcn

#endif  // MXDCN_DCN_TILING_DATA_H
