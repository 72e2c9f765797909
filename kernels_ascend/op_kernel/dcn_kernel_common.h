// Shared pieces of the mx_dcn AscendC kernels (im2col and col2im): geometry and work split from the
// tiling, the tile walk, the sampling plan of a tile computed with vector instructions, the window of
// x a tile reads, and the corners of a sample fetched on its own.
//
// Layouts (contiguous; fp32, except im2col's columns: fp32, fp16 or bf16, the columnsType field): x (N, H, W, C); offset (N, 2K, Ho, Wo) with channels (k, [dy, dx]);
// mask (N, K, Ho, Wo); columns (P, K, C), P = the launch's output pixels, global pixel
// pixelStart + p = (n*Ho + ho)*Wo + wo. C is a multiple of 64 (a channel row is whole 256-byte repeats).
//
// The plan of a tile (tilePixels pixels of one output row): every array holds one float per sample
// s = k * tileStride + t (tap k, pixel t of the tile), planLen in all (padding lanes are junk, never
// read by the scalar unit). The sample rule is docs/design.md's (mx_dcn/csrc/common/sampling.h): inside iff
// -1 < y < H and -1 < x < W (a NaN coordinate is outside); corners floor(y) + {0, 1}, floor(x) + {0, 1};
// corners outside the image count as zero and are never read. The class of each sample (code):
//   >= 0      its four corners lie in the tile's window: the UB offset of corner (y0, x0) there;
//   kFetch    inside, but not in the window: its corners are copied from GM into a staging slot;
//   kOutside  outside the open box: value 0, no gradient.
// Windows and slots hold exact zeros where a corner lies outside the image, so every inside sample
// blends its four cells with its four bilinear weights and an outside corner adds 0 (never 0 * Inf).
#ifndef MXDCN_DCN_KERNEL_COMMON_H
#define MXDCN_DCN_KERNEL_COMMON_H

#include "kernel_operator.h"

namespace mxdcn_kernel {

using namespace AscendC;

constexpr uint32_t REPEAT_FLOATS = 64;   // fp32 elements per vector repeat (256 bytes)
constexpr uint32_t BLOCK_FLOATS = 8;     // fp32 elements per 32-byte block
constexpr float kFetch = -1.0f;          // plan codes (see above)
constexpr float kOutside = -2.0f;
constexpr uint32_t kMaxSubRows = 256;   // subRows <= 255 (the tiling guarantees it)

__aicore__ inline uint32_t MinU32(uint32_t a, uint32_t b) { return a < b ? a : b; }
__aicore__ inline int32_t MaxI32(int32_t a, int32_t b) { return a > b ? a : b; }
__aicore__ inline int32_t MinI32(int32_t a, int32_t b) { return a < b ? a : b; }

// A tile: `count` pixels of output row `ho` of image `image` from column `wo` (launch pixel `first`),
// and the window of x its samples read: virtual rows [row0, row0 + rows) x columns [col0, col0 + cols),
// where row -1 / H and column -1 / W are zeros; rows == 0: no window.
struct Tile {
  uint32_t first, count, image, ho, wo;
  int32_t row0, col0;
  uint32_t rows, cols;
};

class DcnKernelBase {
 protected:
  uint32_t n_, h_, w_, c_, ho_, wo_, kh_, kw_, taps_;
  uint32_t strideH_, strideW_, padH_, padW_, dilationH_, dilationW_;
  bool hasMask_;
  uint32_t pixelStart_, pixelCount_, blockDim_, tile_, tileStride_, planLen_, subRows_, slots_;
  uint32_t marginY_, marginX_, winRows_, winCols_;
  uint32_t blockBegin_, blockCount_;   // this block's pixels: [blockBegin_, blockBegin_ + blockCount_)
  // The tile walk: pixels [walkBegin_, walkBegin_ + walkCount_) of the launch, walkDone_ handed out;
  // tiles get a window when walkWindows_.
  uint32_t walkBegin_ = 0, walkCount_ = 0, walkDone_ = 0;
  bool walkWindows_ = true;
  GlobalTensor<float> xGm_, offsetGm_, maskGm_;
  TPipe* pipe_ = nullptr;
  TQue<TPosition::VECIN, 2> paramQue_;   // a tile's dy, dx (and mask) rows, [k][tileStride] each
  TQue<TPosition::VECIN, 2> winQue_;     // a tile's window of x
  TBuf<TPosition::VECCALC> planBuf_, bitBuf_, stageBuf_;
  // Plan arrays (planLen floats each). Constants: tapY = i*dh - ph, tapX = t*sw - pw + j*dw, ones.
  LocalTensor<float> tapY_, tapX_, ones_, y_, x_, y0_, x0_, ly_, lx_, hy_, hx_, code_, tmp_;
  LocalTensor<float> wt_[4];                   // bilinear weights of corners (y0,x0) (y0,x0+1) (y0+1,x0) (y0+1,x0+1)
  LocalTensor<uint8_t> inside_, inWin_, cmp_;  // one bit per sample
  LocalTensor<float> stage_;                   // two sets of `slots_` slots of 2 x 2 corner cells
  TEventID planReady_, planRead_, stageLoaded_;
  bool planReadPending_ = false;

  static constexpr uint32_t kCommonPlanArrays = 17;   // the arrays above (dcn_tiling.cpp: PlanArrays)

  template <typename Tiling>
  __aicore__ inline void InitBase(const Tiling& t, GM_ADDR x, GM_ADDR offset, GM_ADDR mask, TPipe* pipe,
                                  uint32_t planArrays) {
    n_ = t.n; h_ = t.h; w_ = t.w; c_ = t.c; ho_ = t.ho; wo_ = t.wo; kh_ = t.kh; kw_ = t.kw;
    taps_ = kh_ * kw_;
    strideH_ = t.strideH; strideW_ = t.strideW; padH_ = t.padH; padW_ = t.padW;
    dilationH_ = t.dilationH; dilationW_ = t.dilationW;
    hasMask_ = t.hasMask != 0;
    pixelStart_ = t.pixelStart; pixelCount_ = t.pixelCount; blockDim_ = t.blockDim;
    tile_ = t.tilePixels; tileStride_ = t.tileStride; planLen_ = t.planLen; subRows_ = t.subRows;
    slots_ = t.slots; marginY_ = t.marginY; marginX_ = t.marginX; winRows_ = t.winRows; winCols_ = t.winCols;
    // Contiguous, uneven split: the first `pixelsRemainder` blocks take one pixel more.
    const uint32_t block = GetBlockIdx();
    blockCount_ = block < t.blockDim ? t.pixelsPerBlock + (block < t.pixelsRemainder ? 1 : 0) : 0;
    blockBegin_ = block * t.pixelsPerBlock + MinU32(block, t.pixelsRemainder);
    const uint64_t planes = uint64_t(n_) * ho_ * wo_;
    xGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(x), uint64_t(n_) * h_ * w_ * c_);
    offsetGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(offset), planes * taps_ * 2);
    if (hasMask_) maskGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(mask), planes * taps_);

    // Buffers in the order of DcnUbBytes (op_host/dcn_tiling.cpp).
    pipe_ = pipe;
    const uint32_t plan = planLen_ * sizeof(float);
    pipe->InitBuffer(paramQue_, 2, (hasMask_ ? 3 : 2) * plan);
    pipe->InitBuffer(planBuf_, planArrays * plan);
    pipe->InitBuffer(bitBuf_, 3 * AlignBlock(planLen_ / 8));
    if (winRows_ > 0) pipe->InitBuffer(winQue_, 2, winRows_ * winCols_ * c_ * sizeof(float));
    pipe->InitBuffer(stageBuf_, 2 * slots_ * 4 * c_ * sizeof(float));

    LocalTensor<float> arrays = planBuf_.Get<float>();
    LocalTensor<float>* named[kCommonPlanArrays] = {&tapY_, &tapX_, &ones_, &y_, &x_, &y0_, &x0_, &ly_, &lx_,
                                                   &hy_, &hx_, &code_, &tmp_, &wt_[0], &wt_[1], &wt_[2], &wt_[3]};
    for (uint32_t i = 0; i < kCommonPlanArrays; ++i) *named[i] = arrays[i * planLen_];
    LocalTensor<uint8_t> bits = bitBuf_.Get<uint8_t>();
    inside_ = bits;
    inWin_ = bits[AlignBlock(planLen_ / 8)];
    cmp_ = bits[2 * AlignBlock(planLen_ / 8)];
    stage_ = stageBuf_.Get<float>();
    planReady_ = pipe->AllocEventID<HardEvent::V_S>();
    planRead_ = pipe->AllocEventID<HardEvent::S_V>();
    stageLoaded_ = pipe->AllocEventID<HardEvent::MTE2_V>();
  }

  // The plan arrays after the common ones (kernel-specific), `i` counted from 0.
  __aicore__ inline LocalTensor<float> PlanArray(uint32_t i) {
    return planBuf_.Get<float>()[(kCommonPlanArrays + i) * planLen_];
  }

  __aicore__ static inline uint32_t AlignBlock(uint32_t bytes) { return (bytes + 31) / 32 * 32; }

  // The tap constants of the plan, once per block.
  __aicore__ inline void InitPlanConstants() {
    Duplicate<float>(ones_, 1.0f, int32_t(planLen_));
    CreateVecIndex(tmp_, 0.0f, tileStride_);   // t
    Muls<float>(tmp_, tmp_, float(strideW_), int32_t(tileStride_));
    for (uint32_t k = 0; k < taps_; ++k) {
      const uint32_t i = k / kw_, j = k - (k / kw_) * kw_;
      Duplicate<float>(tapY_[k * tileStride_], float(int32_t(i * dilationH_) - int32_t(padH_)), int32_t(tileStride_));
      Adds<float>(tapX_[k * tileStride_], tmp_, float(int32_t(j * dilationW_) - int32_t(padW_)), int32_t(tileStride_));
    }
  }

  __aicore__ inline void StartWalk(uint32_t begin, uint32_t count, bool windows) {
    walkBegin_ = begin;
    walkCount_ = count;
    walkDone_ = 0;
    walkWindows_ = windows && winRows_ > 0;
  }

  // Hands out the walk's next tile (at most tile_ pixels of one output row); false when done.
  __aicore__ inline bool NextTile(Tile& t) {
    if (walkDone_ >= walkCount_) return false;
    t.first = walkBegin_ + walkDone_;
    const uint32_t g = pixelStart_ + t.first;
    const uint32_t plane = ho_ * wo_;
    t.image = g / plane;
    const uint32_t rest = g - t.image * plane;
    t.ho = rest / wo_;
    t.wo = rest - t.ho * wo_;
    t.count = MinU32(MinU32(tile_, walkCount_ - walkDone_), wo_ - t.wo);
    walkDone_ += t.count;
    PlaceWindow(t);
    return true;
  }

  // The window around the tile's nominal footprint (rows i*dh + {0, 1}, columns t*sw + j*dw + {0, 1})
  // widened by the margins, cut to the virtual image [-1, H] x [-1, W]. Its first column moves one
  // left when that makes the GM start of its copy 512-byte aligned (GM地址尽量512B对齐.md).
  __aicore__ inline void PlaceWindow(Tile& t) {
    t.rows = 0;
    t.row0 = t.col0 = 0;
    t.cols = 0;
    if (!walkWindows_) return;
    const int32_t top = int32_t(t.ho * strideH_) - int32_t(padH_) - int32_t(marginY_);
    const int32_t left = int32_t(t.wo * strideW_) - int32_t(padW_) - int32_t(marginX_);
    const int32_t row0 = MaxI32(-1, top), rowEnd = MinI32(int32_t(h_) + 1, top + int32_t(winRows_));
    int32_t col0 = MaxI32(-1, left);
    const int32_t colEnd = MinI32(int32_t(w_) + 1, left + int32_t(winCols_) - 1);
    if (rowEnd <= row0 || colEnd <= col0) return;
    const uint64_t firstPixel = (uint64_t(t.image) * h_ + uint32_t(MaxI32(row0, 0))) * w_ + uint32_t(MaxI32(col0, 0));
    if (c_ % 128 != 0 && col0 > 0 && firstPixel % 2 == 1) col0 -= 1;
    t.row0 = row0;
    t.col0 = col0;
    t.rows = uint32_t(rowEnd - row0);
    t.cols = uint32_t(colEnd - col0);
  }

  // The tile's dy, dx (and mask) rows, one DataCopyPad per kind: K bursts of `count` floats, a plane
  // apart in GM, each landing on its own tileStride row in UB.
  __aicore__ inline void LoadParams(const Tile& t) {
    LocalTensor<float> params = paramQue_.AllocTensor<float>();
    const uint64_t plane = uint64_t(ho_) * wo_;
    const uint64_t pixel = uint64_t(t.ho) * wo_ + t.wo;
    const uint32_t bytes = t.count * sizeof(float);
    const uint32_t gap = (tileStride_ - (t.count + 7) / 8 * 8) / BLOCK_FLOATS;
    DataCopyPadExtParams<float> noPad;
    DataCopyExtParams cp(taps_, bytes, uint32_t((2 * plane - t.count) * sizeof(float)), gap, 0);
    const uint64_t dyFirst = uint64_t(t.image) * 2 * taps_ * plane + pixel;
    DataCopyPad(params, offsetGm_[dyFirst], cp, noPad);
    DataCopyPad(params[planLen_], offsetGm_[dyFirst + plane], cp, noPad);
    if (hasMask_) {
      DataCopyExtParams cm(taps_, bytes, uint32_t((plane - t.count) * sizeof(float)), gap, 0);
      DataCopyPad(params[2 * planLen_], maskGm_[uint64_t(t.image) * taps_ * plane + pixel], cm, noPad);
    }
    paramQue_.EnQue(params);
  }

  // The tile's window of x in one DataCopy (rows of its in-image part, a row of x apart in GM); rows
  // or columns outside the image are zeros.
  __aicore__ inline void LoadWindow(const Tile& t) {
    if (!walkWindows_) return;
    LocalTensor<float> win = winQue_.AllocTensor<float>();
    if (t.rows > 0) {
      const int32_t r0 = MaxI32(t.row0, 0), r1 = MinI32(t.row0 + int32_t(t.rows) - 1, int32_t(h_) - 1);
      const int32_t c0 = MaxI32(t.col0, 0), c1 = MinI32(t.col0 + int32_t(t.cols) - 1, int32_t(w_) - 1);
      if (r0 != t.row0 || c0 != t.col0 || r1 != t.row0 + int32_t(t.rows) - 1 || c1 != t.col0 + int32_t(t.cols) - 1) {
        Duplicate<float>(win, 0.0f, int32_t(t.rows * t.cols * c_));
        const event_t zeroed = static_cast<event_t>(pipe_->FetchEventID(HardEvent::V_MTE2));
        SetFlag<HardEvent::V_MTE2>(zeroed);
        WaitFlag<HardEvent::V_MTE2>(zeroed);
      }
      if (r1 >= r0 && c1 >= c0) {
        const uint32_t cols = uint32_t(c1 - c0 + 1), blocks = c_ / BLOCK_FLOATS;
        DataCopyParams cp;   // fields set one by one: a value too wide for its field reaches the model's check
        cp.blockCount = uint32_t(r1 - r0 + 1);
        cp.blockLen = cols * blocks;
        cp.srcStride = (w_ - cols) * blocks;
        cp.dstStride = (t.cols - cols) * blocks;
        const uint32_t at = (uint32_t(r0 - t.row0) * t.cols + uint32_t(c0 - t.col0)) * c_;
        DataCopy(win[at], xGm_[((uint64_t(t.image) * h_ + uint32_t(r0)) * w_ + uint32_t(c0)) * c_], cp);
      }
    }
    winQue_.EnQue(win);
  }

  // The plan of tile `t` from its dy, dx rows (vector instructions over all its samples at once).
  __aicore__ inline void Plan(const LocalTensor<float>& params, const Tile& t) {
    const int32_t n = int32_t(planLen_);
    const uint32_t bits = planLen_;
    LocalTensor<uint16_t> in16 = inside_.ReinterpretCast<uint16_t>(), win16 = inWin_.ReinterpretCast<uint16_t>();
    LocalTensor<uint16_t> cmp16 = cmp_.ReinterpretCast<uint16_t>();
    const int32_t words = int32_t(planLen_ / 16);
    if (planReadPending_) {   // the scalar unit has read the previous tile's plan
      WaitFlag<HardEvent::S_V>(planRead_);
      planReadPending_ = false;
    }
    // The integer part first (exact), then the offset: one rounding, so a sample's coordinate does
    // not depend on where its tile starts (the deterministic grad_x is the same for every tiling).
    Adds<float>(y_, tapY_, float(t.ho * strideH_), n);
    Add<float>(y_, params, y_, n);
    Adds<float>(x_, tapX_, float(t.wo * strideW_), n);
    Add<float>(x_, params[planLen_], x_, n);
    // inside: -1 < y < H and -1 < x < W (false for NaN)
    Compares(inside_, y_, -1.0f, CMPMODE::GT, bits);
    Compares(cmp_, y_, float(h_), CMPMODE::LT, bits);
    And<uint16_t>(in16, in16, cmp16, words);
    Compares(cmp_, x_, -1.0f, CMPMODE::GT, bits);
    And<uint16_t>(in16, in16, cmp16, words);
    Compares(cmp_, x_, float(w_), CMPMODE::LT, bits);
    And<uint16_t>(in16, in16, cmp16, words);
    // Outside samples get (0, 0): every later value is finite, and they are never read as samples.
    Select(y_, inside_, y_, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, bits);
    Select(x_, inside_, x_, 0.0f, SELMODE::VSEL_TENSOR_SCALAR_MODE, bits);
    Cast(y0_, y_, RoundMode::CAST_FLOOR, bits);
    Cast(x0_, x_, RoundMode::CAST_FLOOR, bits);
    Sub<float>(ly_, y_, y0_, n);
    Sub<float>(lx_, x_, x0_, n);
    Sub<float>(hy_, ones_, ly_, n);
    Sub<float>(hx_, ones_, lx_, n);
    Mul<float>(wt_[0], hy_, hx_, n);
    Mul<float>(wt_[1], hy_, lx_, n);
    Mul<float>(wt_[2], ly_, hx_, n);
    Mul<float>(wt_[3], ly_, lx_, n);
    if (t.rows > 0) {
      // in the window: row0 <= y0 <= row0 + rows - 2 and col0 <= x0 <= col0 + cols - 2
      Compares(inWin_, y0_, float(t.row0), CMPMODE::GE, bits);
      And<uint16_t>(win16, win16, in16, words);
      Compares(cmp_, y0_, float(t.row0 + int32_t(t.rows) - 2), CMPMODE::LE, bits);
      And<uint16_t>(win16, win16, cmp16, words);
      Compares(cmp_, x0_, float(t.col0), CMPMODE::GE, bits);
      And<uint16_t>(win16, win16, cmp16, words);
      Compares(cmp_, x0_, float(t.col0 + int32_t(t.cols) - 2), CMPMODE::LE, bits);
      And<uint16_t>(win16, win16, cmp16, words);
      // ((y0 - row0) * cols + x0 - col0) * C: relative first, so every product of an in-window
      // sample stays below the window's size (exact in fp32).
      Adds<float>(tmp_, y0_, -float(t.row0), n);
      Muls<float>(tmp_, tmp_, float(t.cols * c_), n);
      Adds<float>(code_, x0_, -float(t.col0), n);
      Muls<float>(code_, code_, float(c_), n);
      Add<float>(code_, code_, tmp_, n);
      Select(code_, inWin_, code_, kFetch, SELMODE::VSEL_TENSOR_SCALAR_MODE, bits);
    } else {
      Duplicate<float>(code_, kFetch, n);
    }
    Select(code_, inside_, code_, kOutside, SELMODE::VSEL_TENSOR_SCALAR_MODE, bits);
  }

  // The scalar unit may read the plan now (once per tile) ...
  __aicore__ inline void PlanToScalar() {
    SetFlag<HardEvent::V_S>(planReady_);
    WaitFlag<HardEvent::V_S>(planReady_);
  }
  // ... and has finished reading it: the next Plan may overwrite it.
  __aicore__ inline void PlanReadDone() {
    SetFlag<HardEvent::S_V>(planRead_);
    planReadPending_ = true;
  }

  __aicore__ inline LocalTensor<float> Slot(uint32_t set, uint32_t j) { return stage_[(set * slots_ + j) * 4 * c_]; }

  // Copies the in-image corners of the sample at floor (y0, x0) of image `image` into `slot` (rows
  // 2*C floats apart: (y0, x0) (y0, x0+1) | (y0+1, x0) (y0+1, x0+1)) in one DataCopy, and zeroes the
  // cells of corners outside the image. An inside sample has at least one corner in the image.
  __aicore__ inline void FetchCorners(const LocalTensor<float>& slot, uint32_t image, int32_t y0, int32_t x0) {
    const uint32_t rowFirst = y0 < 0 ? 1 : 0, rowLast = y0 + 1 > int32_t(h_) - 1 ? 0 : 1;
    const uint32_t colFirst = x0 < 0 ? 1 : 0, colLast = x0 + 1 > int32_t(w_) - 1 ? 0 : 1;
    const uint32_t repeats = c_ / REPEAT_FLOATS;
    for (uint32_t a = 0; a < 2; ++a) {
      for (uint32_t b = 0; b < 2; ++b) {
        if (a < rowFirst || a > rowLast || b < colFirst || b > colLast) {
          Duplicate<float>(slot[(2 * a + b) * c_], 0.0f, REPEAT_FLOATS, repeats, 1, 8);
        }
      }
    }
    const uint32_t rows = rowLast - rowFirst + 1, cols = colLast - colFirst + 1, blocks = c_ / BLOCK_FLOATS;
    DataCopyParams cp;
    cp.blockCount = rows;
    cp.blockLen = cols * blocks;
    cp.srcStride = (w_ - cols) * blocks;
    cp.dstStride = (2 - cols) * blocks;
    const uint64_t pixel = (uint64_t(image) * h_ + uint32_t(y0 + int32_t(rowFirst))) * w_ + uint32_t(x0 + int32_t(colFirst));
    DataCopy(slot[(2 * rowFirst + colFirst) * c_], xGm_[pixel * c_], cp);
  }

  // Reads sample s's floor coordinates (plan arrays) as integers.
  __aicore__ inline void Floor(uint32_t s, int32_t& y0, int32_t& x0) {
    y0 = int32_t(y0_.GetValue(s));
    x0 = int32_t(x0_.GetValue(s));
  }

  __aicore__ inline void FinishBase() {
    if (planReadPending_) {
      WaitFlag<HardEvent::S_V>(planRead_);
      planReadPending_ = false;
    }
  }
};

}  // namespace mxdcn_kernel

#endif  // MXDCN_DCN_KERNEL_COMMON_H
