// Shared pieces of the mx_dcn AscendC kernels (im2col and col2im): geometry from the tiling, the
// bilinear sampling plan, the block's pixel range and the corner gather.
//
// Layouts (all fp32, contiguous): x (N, H, W, C); offset (P, K, 2) as [dy, dx] per tap; mask (P, K);
// columns (P, K, C); P = the launch's output pixels, global pixel = pixelStart + p = (n*Ho + ho)*Wo + wo.
// Channels C are a multiple of 64, so every channel row is whole 256-byte vector repeats.
#ifndef MXDCN_DCN_KERNEL_COMMON_H
#define MXDCN_DCN_KERNEL_COMMON_H

#include "kernel_operator.h"

namespace mxdcn_kernel {

using namespace AscendC;

constexpr uint32_t REPEAT_FLOATS = 64;   // fp32 elements per vector repeat (256 bytes)
constexpr uint32_t BLOCK_FLOATS = 8;     // fp32 elements per 32-byte block
constexpr uint32_t BLOCK_BYTES = 32;

__aicore__ inline uint32_t AlignBytes(uint32_t bytes) { return (bytes + BLOCK_BYTES - 1) / BLOCK_BYTES * BLOCK_BYTES; }
__aicore__ inline uint32_t MinU32(uint32_t a, uint32_t b) { return a < b ? a : b; }

__aicore__ inline int32_t FloorToInt(float v) {
  const int32_t t = static_cast<int32_t>(v);   // truncates toward zero
  return static_cast<float>(t) > v ? t - 1 : t;
}

// Where one sample lands and how it blends; the rule of mx_dcn/csrc/common/sampling.h (docs/design.md):
// zero outside the open box (-1, H) x (-1, W), corners outside the image count as zero, derivatives
// on the side of floor(). Corner k: 0 = (y0, x0), 1 = (y0, x0+1), 2 = (y0+1, x0), 3 = (y0+1, x0+1).
struct Plan {
  bool inside;
  bool valid[4];
  int32_t row[4];
  int32_t col[4];
  float w[4];
  float dwdy[4];
  float dwdx[4];
};

__aicore__ inline void MakePlan(float y, float x, int32_t height, int32_t width, Plan& p) {
  p.inside = y > -1.0f && y < static_cast<float>(height) && x > -1.0f && x < static_cast<float>(width);
  for (int k = 0; k < 4; ++k) {
    p.valid[k] = false;
    p.row[k] = p.col[k] = 0;
    p.w[k] = p.dwdy[k] = p.dwdx[k] = 0.0f;
  }
  if (!p.inside) return;
  const int32_t y0 = FloorToInt(y);
  const int32_t x0 = FloorToInt(x);
  const float ly = y - static_cast<float>(y0), lx = x - static_cast<float>(x0);
  const float hy = 1.0f - ly, hx = 1.0f - lx;
  const float w[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
  const float dwdy[4] = {-hx, -lx, hx, lx};
  const float dwdx[4] = {-hy, hy, -ly, ly};
  for (int k = 0; k < 4; ++k) {
    const int32_t r = y0 + k / 2, c = x0 + k % 2;
    if (r >= 0 && r < height && c >= 0 && c < width) {
      p.valid[k] = true;
      p.row[k] = r;
      p.col[k] = c;
      p.w[k] = w[k];
      p.dwdy[k] = dwdy[k];
      p.dwdx[k] = dwdx[k];
    }
  }
}

// Geometry and work split shared by both kernels, read from the tiling struct.
class DcnKernelBase {
 protected:
  uint32_t n_, h_, w_, c_, ho_, wo_, kh_, kw_, taps_;
  uint32_t strideH_, strideW_, padH_, padW_, dilationH_, dilationW_;
  bool hasMask_;
  uint32_t pixelStart_, pixelCount_, tilePixels_, cTile_;
  uint32_t blockBegin_, blockCount_;   // this block's pixels: [blockBegin_, blockBegin_ + blockCount_)
  GlobalTensor<float> xGm_, offsetGm_, maskGm_;

  template <typename Tiling>
  __aicore__ inline void InitBase(const Tiling& t, GM_ADDR x, GM_ADDR offset, GM_ADDR mask) {
    n_ = t.n; h_ = t.h; w_ = t.w; c_ = t.c; ho_ = t.ho; wo_ = t.wo; kh_ = t.kh; kw_ = t.kw;
    taps_ = kh_ * kw_;
    strideH_ = t.strideH; strideW_ = t.strideW; padH_ = t.padH; padW_ = t.padW;
    dilationH_ = t.dilationH; dilationW_ = t.dilationW;
    hasMask_ = t.hasMask != 0;
    pixelStart_ = t.pixelStart; pixelCount_ = t.pixelCount;
    tilePixels_ = t.tilePixels; cTile_ = t.cTile;
    // Contiguous, uneven split: the first `pixelsRemainder` blocks take one pixel more.
    const uint32_t block = GetBlockIdx();
    blockCount_ = block < t.blockDim ? t.pixelsPerBlock + (block < t.pixelsRemainder ? 1 : 0) : 0;
    blockBegin_ = block * t.pixelsPerBlock + MinU32(block, t.pixelsRemainder);
    xGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(x), uint64_t(n_) * h_ * w_ * c_);
    offsetGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(offset), uint64_t(pixelCount_) * taps_ * 2);
    if (hasMask_) maskGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(mask), uint64_t(pixelCount_) * taps_);
  }

  // Loads the offsets (and masks) of launch pixels [first, first + count) into UB for scalar reads.
  __aicore__ inline void LoadTile(const LocalTensor<float>& offsets, const LocalTensor<float>& masks, uint32_t first,
                                  uint32_t count) {
    DataCopyExtParams cp;
    cp.blockCount = 1;
    cp.blockLen = count * taps_ * 2 * sizeof(float);
    DataCopyPadExtParams<float> noPad;
    DataCopyPad(offsets, offsetGm_[uint64_t(first) * taps_ * 2], cp, noPad);
    if (hasMask_) {
      cp.blockLen = count * taps_ * sizeof(float);
      DataCopyPad(masks, maskGm_[uint64_t(first) * taps_], cp, noPad);
    }
    event_t ev = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::MTE2_S));
    SetFlag<HardEvent::MTE2_S>(ev);
    WaitFlag<HardEvent::MTE2_S>(ev);
  }

  // Before the next LoadTile overwrites the offsets the scalar unit is reading.
  __aicore__ inline void TileReadDone() {
    event_t ev = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::S_MTE2));
    SetFlag<HardEvent::S_MTE2>(ev);
    WaitFlag<HardEvent::S_MTE2>(ev);
  }

  // The sampling plan of launch pixel p (tile slot i), tap (ki, kj); also its image's GM base and mask.
  __aicore__ inline void PlanTap(uint32_t p, uint32_t i, uint32_t ki, uint32_t kj, const LocalTensor<float>& offsets,
                                 const LocalTensor<float>& masks, Plan& plan, uint64_t& imageBase, float& m) {
    const uint32_t g = pixelStart_ + p;
    const uint32_t image = g / (ho_ * wo_);
    const uint32_t rest = g - image * ho_ * wo_;
    const uint32_t oh = rest / wo_, ow = rest - (rest / wo_) * wo_;
    const uint32_t tap = ki * kw_ + kj;
    const float dy = offsets.GetValue((i * taps_ + tap) * 2);
    const float dx = offsets.GetValue((i * taps_ + tap) * 2 + 1);
    m = hasMask_ ? masks.GetValue(i * taps_ + tap) : 1.0f;
    const int32_t baseY = static_cast<int32_t>(oh * strideH_ + ki * dilationH_) - static_cast<int32_t>(padH_);
    const int32_t baseX = static_cast<int32_t>(ow * strideW_ + kj * dilationW_) - static_cast<int32_t>(padW_);
    MakePlan(static_cast<float>(baseY) + dy, static_cast<float>(baseX) + dx, static_cast<int32_t>(h_),
             static_cast<int32_t>(w_), plan);
    imageBase = uint64_t(image) * h_ * w_ * c_;
  }

  __aicore__ inline uint64_t CornerOffset(const Plan& p, uint32_t k) const {
    return (uint64_t(p.row[k]) * w_ + uint64_t(p.col[k])) * c_;
  }

  // Copies channels [c0, c0 + cLen) of the valid corners into corners[k * cTile_]. The two corners
  // of one image row are adjacent pixels in NHWC, so one DataCopy with two bursts C floats apart
  // fetches both.
  __aicore__ inline void GatherCorners(const LocalTensor<float>& corners, const Plan& p, uint64_t imageBase,
                                       uint32_t c0, uint32_t cLen) {
    for (uint32_t r = 0; r < 2; ++r) {
      const uint32_t left = 2 * r, right = 2 * r + 1;
      if (!p.valid[left] && !p.valid[right]) continue;
      const uint32_t first = p.valid[left] ? left : right;
      DataCopyParams cp;
      cp.blockCount = (p.valid[left] && p.valid[right]) ? 2u : 1u;
      cp.blockLen = cLen / BLOCK_FLOATS;
      cp.srcStride = (c_ - cLen) / BLOCK_FLOATS;
      cp.dstStride = (cTile_ - cLen) / BLOCK_FLOATS;
      DataCopy(corners[first * cTile_], xGm_[imageBase + CornerOffset(p, first) + c0], cp);
    }
  }
};

}  // namespace mxdcn_kernel

#endif  // MXDCN_DCN_KERNEL_COMMON_H
