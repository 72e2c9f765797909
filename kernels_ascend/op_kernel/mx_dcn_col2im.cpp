// col2im of the deformable convolution on Atlas A2 vector cores: from the gradient of the columns,
//   grad_x      += mask * w_q * grad_col                     (over the four corners q of each sample)
//   grad_offset  = mask * sum_q dw_q/d(dy, dx) * D_q,   D_q = sum_c grad_col[c] * corner_q[c]
//   grad_mask    = sum_q w_q * D_q
// grad_offset and grad_mask are fully written for the launch's pixels. grad_x:
//   atomic mode (deterministic == 0): accumulated with atomic adds (the caller zeroes it): per tile,
//     the samples in the window add into a UB copy of the window, stored once with one atomic
//     DataCopy; samples fetched on their own add their corners with one atomic copy each;
//   deterministic mode: every element written once, in a fixed order: block b owns input rows
//     [b * R, (b + 1) * R) of the flattened (N*H) rows (R = ceil(N*H / blockDim)) and, band after band,
//     walks every tile of the launch in order, adding the samples that touch its band in order of
//     (tile, pixel, tap) -- whatever the order the blocks run in.
// Per tile, as in im2col: the plan with vector instructions, one V -> S hand-off, then per sample
// from scalar reads of its code and four weights: the four corner products with grad_col, reduced
// per 32-byte block twice (ReduceDataBlock) into the sample's D_q, and four Axpy into the window's
// grad; after the tile, D_q are gathered by corner (GatherMask) and the grad offsets and masks of the
// whole tile computed with vector instructions and stored with one DataCopyPad per kind.
#include "dcn_kernel_common.h"
#include "dcn_tiling_data.h"

namespace mxdcn_kernel {

class DcnCol2im : public DcnKernelBase {
 public:
  template <typename Tiling>
  __aicore__ inline void Init(GM_ADDR x, GM_ADDR offset, GM_ADDR mask, GM_ADDR gradColumns, GM_ADDR gradX,
                              GM_ADDR gradOffset, GM_ADDR gradMask, const Tiling& t, TPipe* pipe) {
    InitBase(t, x, offset, mask, pipe, kCommonPlanArrays + 8);
    deterministic_ = t.deterministic != 0;
    bandRows_ = t.bandRows;
    scanPixels_ = t.scanPixels;
    const uint64_t planes = uint64_t(n_) * ho_ * wo_;
    gradColumnsGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(gradColumns), uint64_t(pixelCount_) * taps_ * c_);
    gradXGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(gradX), uint64_t(n_) * h_ * w_ * c_);
    gradOffsetGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(gradOffset), planes * taps_ * 2);
    if (hasMask_) gradMaskGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(gradMask), planes * taps_);
    for (uint32_t q = 0; q < 4; ++q) {
      mw_[q] = PlanArray(q);     // mask * w_q
      dots_[q] = PlanArray(4 + q);   // D_q
    }
    // Buffers in the order of DcnUbBytes (op_host/dcn_tiling.cpp), after the common ones.
    const uint32_t plan = planLen_ * sizeof(float);
    pipe->InitBuffer(gcQue_, 2, subRows_ * c_ * sizeof(float));
    pipe->InitBuffer(prodBuf_, (4 * c_ + 32) * sizeof(float));
    pipe->InitBuffer(dotBuf_, planLen_ * BLOCK_FLOATS * sizeof(float));
    pipe->InitBuffer(patternBuf_, 4 * 32);
    pipe->InitBuffer(outQue_, 2, (hasMask_ ? 3 : 2) * plan);
    if (deterministic_) {
      pipe->InitBuffer(bandBuf_, bandRows_ * w_ * c_ * sizeof(float));
      stageFree_[0] = pipe->AllocEventID<HardEvent::V_MTE2>();
      stageFree_[1] = pipe->AllocEventID<HardEvent::V_MTE2>();
    } else {
      if (winRows_ > 0) pipe->InitBuffer(gradWinQue_, 2, winRows_ * winCols_ * c_ * sizeof(float));
      stageFree_[0] = pipe->AllocEventID<HardEvent::MTE3_MTE2>();
      stageFree_[1] = pipe->AllocEventID<HardEvent::MTE3_MTE2>();
      stageFreeV_[0] = pipe->AllocEventID<HardEvent::MTE3_V>();
      stageFreeV_[1] = pipe->AllocEventID<HardEvent::MTE3_V>();
    }
  }

  __aicore__ inline void Process() {
    // Gather patterns: lane q of every group of 8 (the D_q slots of a sample's 32-byte block).
    LocalTensor<uint32_t> patterns = patternBuf_.Get<uint32_t>();
    for (uint32_t q = 0; q < 4; ++q) Duplicate<uint32_t>(patterns[q * 8], 0x01010101u << q, 8);
    Tile cur, next;
    StartWalk(blockBegin_, blockCount_, true);
    if (NextTile(cur)) {
      InitPlanConstants();
      LoadParams(cur);
      LoadWindow(cur);
      for (;;) {
        const bool more = NextTile(next);
        Compute(cur, more ? &next : nullptr);
        if (!more) break;
        cur = next;
      }
    }
    if (deterministic_) OwnRows();
    WaitStages();
    FinishBase();
  }

 private:
  // ------------------------------------------------------------------ the block's own pixels

  // Tile t; `next`'s offsets and window are requested after t's own grad rows and corner copies, which
  // the vector pipe needs first (a quarter of col2im's samples may be fetched on their own).
  __aicore__ inline void Compute(const Tile& t, const Tile* next) {
    LocalTensor<float> params = paramQue_.DeQue<float>();
    LocalTensor<float> win;
    if (walkWindows_) win = winQue_.DeQue<float>();
    Plan(params, t);
    MaskedWeights(params);
    Duplicate<float>(dotBuf_.Get<float>(), 0.0f, int32_t(planLen_ * BLOCK_FLOATS));   // outside samples: D = 0
    LocalTensor<float> gradWin;
    const bool windowGrad = !deterministic_ && walkWindows_;
    if (windowGrad) {
      gradWin = gradWinQue_.AllocTensor<float>();
      if (t.rows > 0) Duplicate<float>(gradWin, 0.0f, int32_t(t.rows * t.cols * c_));
    }
    PlanToScalar();
    const uint32_t rows = t.count * taps_;
    LoadGradRows(t, 0);
    for (uint32_t r0 = 0; r0 < rows; r0 += subRows_) {
      const uint32_t count = MinU32(subRows_, rows - r0);
      if (r0 + count < rows) LoadGradRows(t, r0 + count);   // the next sub-tile's rows, meanwhile
      SubTile(t, win, gradWin, r0, count);
    }
    if (next != nullptr) {
      LoadParams(*next);
      LoadWindow(*next);
    }
    PlanReadDone();
    Results(params, t);
    paramQue_.FreeTensor(params);
    if (windowGrad) StoreWindowGrad(t, gradWin);
    if (walkWindows_) winQue_.FreeTensor(win);
  }

  // mask * w_q (the scale of each corner's grad_x); w_q itself without a mask.
  __aicore__ inline void MaskedWeights(const LocalTensor<float>& params) {
    for (uint32_t q = 0; q < 4; ++q) {
      if (hasMask_) {
        Mul<float>(mw_[q], wt_[q], params[2 * planLen_], int32_t(planLen_));
      } else {
        Adds<float>(mw_[q], wt_[q], 0.0f, int32_t(planLen_));
      }
    }
  }

  // Grad-column rows [r0, r0 + subRows) of the tile (row r = p * taps + k), in one DataCopy.
  __aicore__ inline void LoadGradRows(const Tile& t, uint32_t r0) {
    const uint32_t rows = MinU32(subRows_, t.count * taps_ - r0);
    LocalTensor<float> grads = gcQue_.AllocTensor<float>();
    DataCopy(grads, gradColumnsGm_[(uint64_t(t.first) * taps_ + r0) * c_], rows * c_);
    gcQue_.EnQue(grads);
  }

  __aicore__ inline void SubTile(const Tile& t, const LocalTensor<float>& win, const LocalTensor<float>& gradWin,
                                 uint32_t r0, uint32_t rows) {
    LocalTensor<float> grads = gcQue_.DeQue<float>();
    uint16_t fetchSample[kMaxSubRows], fetchRow[kMaxSubRows];
    uint32_t fetches = 0;
    for (uint32_t row = 0; row < rows; ++row) {
      const uint32_t p = (r0 + row) / taps_, k = r0 + row - p * taps_, s = k * tileStride_ + p;
      const float code = code_.GetValue(s);
      if (code >= 0.0f) {
        const uint32_t at = uint32_t(code), pitch = t.cols * c_;
        Dots(s, grads[row * c_], win[at], pitch);
        if (!deterministic_) Scatter(gradWin[at], pitch, grads[row * c_], s);
      } else if (code == kFetch) {
        fetchSample[fetches] = uint16_t(s);
        fetchRow[fetches++] = uint16_t(row);
      }
    }
    for (uint32_t i0 = 0; i0 < fetches; i0 += slots_) {
      FetchRound(t, grads, fetchSample + i0, fetchRow + i0, MinU32(slots_, fetches - i0));
    }
    gcQue_.FreeTensor(grads);
  }

  // Samples fetched on their own, `count` <= slots_ of them: corners in, D_q, and (atomic mode) their
  // grad_x contributions out with one atomic DataCopy each.
  __aicore__ inline void FetchRound(const Tile& t, const LocalTensor<float>& grads, const uint16_t* samples,
                                    const uint16_t* rows, uint32_t count) {
    const uint32_t set = round_++ & 1u;
    if (stagePending_[set]) {
      if (deterministic_) {
        WaitFlag<HardEvent::V_MTE2>(stageFree_[set]);
      } else {
        WaitFlag<HardEvent::MTE3_MTE2>(stageFree_[set]);
        WaitFlag<HardEvent::MTE3_V>(stageFreeV_[set]);
      }
      stagePending_[set] = false;
    }
    int32_t y0[kMaxSlots], x0[kMaxSlots];
    for (uint32_t j = 0; j < count; ++j) {
      Floor(samples[j], y0[j], x0[j]);
      FetchCorners(Slot(set, j), t.image, y0[j], x0[j]);
    }
    SetFlag<HardEvent::MTE2_V>(stageLoaded_);
    WaitFlag<HardEvent::MTE2_V>(stageLoaded_);
    for (uint32_t j = 0; j < count; ++j) Dots(samples[j], grads[rows[j] * c_], Slot(set, j), 2 * c_);
    if (deterministic_) {
      SetFlag<HardEvent::V_MTE2>(stageFree_[set]);
      stagePending_[set] = true;
      return;
    }
    const UnaryRepeatParams unary(1, 1, 8, 8);
    for (uint32_t j = 0; j < count; ++j) {   // the cells now hold mask * w_q * grad_col
      const LocalTensor<float> slot = Slot(set, j), g = grads[rows[j] * c_];
      for (uint32_t q = 0; q < 4; ++q) {
        Muls<float>(slot[q * c_], g, mw_[q].GetValue(samples[j]), REPEAT_FLOATS, c_ / REPEAT_FLOATS, unary);
      }
    }
    const event_t ready = static_cast<event_t>(pipe_->FetchEventID(HardEvent::V_MTE3));
    SetFlag<HardEvent::V_MTE3>(ready);
    WaitFlag<HardEvent::V_MTE3>(ready);
    SetAtomicAdd<float>();
    for (uint32_t j = 0; j < count; ++j) AddCorners(Slot(set, j), t.image, y0[j], x0[j]);
    SetAtomicNone();
    SetFlag<HardEvent::MTE3_MTE2>(stageFree_[set]);
    SetFlag<HardEvent::MTE3_V>(stageFreeV_[set]);
    stagePending_[set] = true;
  }

  // The in-image corners of a slot added into grad_x (the cells FetchCorners filled), one DataCopy.
  __aicore__ inline void AddCorners(const LocalTensor<float>& slot, uint32_t image, int32_t y0, int32_t x0) {
    const uint32_t rowFirst = y0 < 0 ? 1 : 0, rowLast = y0 + 1 > int32_t(h_) - 1 ? 0 : 1;
    const uint32_t colFirst = x0 < 0 ? 1 : 0, colLast = x0 + 1 > int32_t(w_) - 1 ? 0 : 1;
    const uint32_t cols = colLast - colFirst + 1, blocks = c_ / BLOCK_FLOATS;
    DataCopyParams cp;
    cp.blockCount = rowLast - rowFirst + 1;
    cp.blockLen = cols * blocks;
    cp.srcStride = (2 - cols) * blocks;
    cp.dstStride = (w_ - cols) * blocks;
    const uint64_t pixel = (uint64_t(image) * h_ + uint32_t(y0 + int32_t(rowFirst))) * w_ + uint32_t(x0 + int32_t(colFirst));
    DataCopy(gradXGm_[pixel * c_], slot[(2 * rowFirst + colFirst) * c_], cp);
  }

  // D_q of sample s: the products of its grad row with its four cells, each summed over the channels
  // (folded to 64 lanes, then 8 per block, then one per cell) into lanes 0..3 of its 32-byte slot.
  __aicore__ inline void Dots(uint32_t s, const LocalTensor<float>& grad, const LocalTensor<float>& cell, uint32_t pitch) {
    LocalTensor<float> prod = prodBuf_.Get<float>(), partial = prod[4 * c_];
    const uint32_t repeats = c_ / REPEAT_FLOATS, rowBlocks = c_ / BLOCK_FLOATS;
    const BinaryRepeatParams plain(1, 1, 1, 8, 8, 8);
    const uint32_t at[4] = {0, c_, pitch, pitch + c_};
    for (uint32_t q = 0; q < 4; ++q) Mul<float>(prod[q * c_], grad, cell[at[q]], REPEAT_FLOATS, repeats, plain);
    const BinaryRepeatParams fold(1, 1, 1, uint8_t(rowBlocks), uint8_t(rowBlocks), uint8_t(rowBlocks));
    for (uint32_t r = 1; r < repeats; ++r) Add<float>(prod, prod, prod[r * REPEAT_FLOATS], REPEAT_FLOATS, 4, fold);
    ReduceDataBlock<ReduceType::SUM, float, float>(partial, prod, REPEAT_FLOATS, 4, 1, 1, int32_t(rowBlocks));
    ReduceDataBlock<ReduceType::SUM, float, float>(dotBuf_.Get<float>()[s * BLOCK_FLOATS], partial, 32, 1, 1, 1, 8);
  }

  // grad_x of a window sample: cell_q += mask * w_q * grad (cells of the window's grad copy).
  __aicore__ inline void Scatter(const LocalTensor<float>& cell, uint32_t pitch, const LocalTensor<float>& grad, uint32_t s) {
    const UnaryRepeatParams unary(1, 1, 8, 8);
    const uint32_t repeats = c_ / REPEAT_FLOATS;
    const float m00 = mw_[0].GetValue(s), m01 = mw_[1].GetValue(s), m10 = mw_[2].GetValue(s), m11 = mw_[3].GetValue(s);
    Axpy<float, float>(cell, grad, m00, REPEAT_FLOATS, repeats, unary);
    Axpy<float, float>(cell[c_], grad, m01, REPEAT_FLOATS, repeats, unary);
    Axpy<float, float>(cell[pitch], grad, m10, REPEAT_FLOATS, repeats, unary);
    Axpy<float, float>(cell[pitch + c_], grad, m11, REPEAT_FLOATS, repeats, unary);
  }

  // The tile's grad offsets (dy, dx) and grad masks from D_q, with vector instructions, stored per kind.
  __aicore__ inline void Results(const LocalTensor<float>& params, const Tile& t) {
    const int32_t n = int32_t(planLen_);
    LocalTensor<float> dots = dotBuf_.Get<float>();
    LocalTensor<uint32_t> patterns = patternBuf_.Get<uint32_t>();
    const uint32_t groups = planLen_ / BLOCK_FLOATS;   // 64-lane repeats of the 8-float slots
    for (uint32_t q = 0; q < 4; ++q) {
      for (uint32_t r0 = 0; r0 < groups; r0 += 255) {
        GatherMaskParams gp;
        gp.src0BlockStride = 1;
        gp.repeatTimes = uint16_t(MinU32(255, groups - r0));
        gp.src0RepeatStride = 8;
        gp.src1RepeatStride = 0;
        uint64_t kept = 0;
        GatherMask(dots_[q][r0 * BLOCK_FLOATS], dots[r0 * REPEAT_FLOATS], patterns[q * 8], false, 0u, gp, kept);
      }
    }
    LocalTensor<float> out = outQue_.AllocTensor<float>();
    LocalTensor<float> gy = out, gx = out[planLen_], a = tmp_, b = y_;
    Sub<float>(a, dots_[2], dots_[0], n);   // d/dy: hx (D10 - D00) + lx (D11 - D01)
    Mul<float>(a, a, hx_, n);
    Sub<float>(b, dots_[3], dots_[1], n);
    Mul<float>(b, b, lx_, n);
    Add<float>(gy, a, b, n);
    Sub<float>(a, dots_[1], dots_[0], n);   // d/dx: hy (D01 - D00) + ly (D11 - D10)
    Mul<float>(a, a, hy_, n);
    Sub<float>(b, dots_[3], dots_[2], n);
    Mul<float>(b, b, ly_, n);
    Add<float>(gx, a, b, n);
    if (hasMask_) {
      const LocalTensor<float> m = params[2 * planLen_];
      Mul<float>(gy, gy, m, n);
      Mul<float>(gx, gx, m, n);
      LocalTensor<float> gm = out[2 * planLen_];
      Mul<float>(gm, wt_[0], dots_[0], n);
      for (uint32_t q = 1; q < 4; ++q) {
        Mul<float>(a, wt_[q], dots_[q], n);
        Add<float>(gm, gm, a, n);
      }
    }
    outQue_.EnQue(out);
    out = outQue_.DeQue<float>();
    const uint64_t plane = uint64_t(ho_) * wo_, pixel = uint64_t(t.ho) * wo_ + t.wo;
    const uint32_t bytes = t.count * sizeof(float);
    const uint32_t gap = (tileStride_ - (t.count + 7) / 8 * 8) / BLOCK_FLOATS;
    DataCopyExtParams cp(taps_, bytes, gap, uint32_t((2 * plane - t.count) * sizeof(float)), 0);
    const uint64_t dyFirst = uint64_t(t.image) * 2 * taps_ * plane + pixel;
    DataCopyPad(gradOffsetGm_[dyFirst], out, cp);
    DataCopyPad(gradOffsetGm_[dyFirst + plane], out[planLen_], cp);
    if (hasMask_) {
      DataCopyExtParams cm(taps_, bytes, gap, uint32_t((plane - t.count) * sizeof(float)), 0);
      DataCopyPad(gradMaskGm_[uint64_t(t.image) * taps_ * plane + pixel], out[2 * planLen_], cm);
    }
    outQue_.FreeTensor(out);
  }

  // The window's grad_x, its in-image part, added with one atomic DataCopy.
  __aicore__ inline void StoreWindowGrad(const Tile& t, LocalTensor<float>& gradWin) {
    gradWinQue_.EnQue(gradWin);
    gradWin = gradWinQue_.DeQue<float>();
    const int32_t r0 = MaxI32(t.row0, 0), r1 = MinI32(t.row0 + int32_t(t.rows) - 1, int32_t(h_) - 1);
    const int32_t c0 = MaxI32(t.col0, 0), c1 = MinI32(t.col0 + int32_t(t.cols) - 1, int32_t(w_) - 1);
    if (t.rows > 0 && r1 >= r0 && c1 >= c0) {
      const uint32_t cols = uint32_t(c1 - c0 + 1), blocks = c_ / BLOCK_FLOATS;
      DataCopyParams cp;
      cp.blockCount = uint32_t(r1 - r0 + 1);
      cp.blockLen = cols * blocks;
      cp.srcStride = (t.cols - cols) * blocks;
      cp.dstStride = (w_ - cols) * blocks;
      const uint32_t at = (uint32_t(r0 - t.row0) * t.cols + uint32_t(c0 - t.col0)) * c_;
      SetAtomicAdd<float>();
      DataCopy(gradXGm_[((uint64_t(t.image) * h_ + uint32_t(r0)) * w_ + uint32_t(c0)) * c_], gradWin[at], cp);
      SetAtomicNone();
    }
    gradWinQue_.FreeTensor(gradWin);
  }

  // ------------------------------------------------------------------ deterministic grad_x

  // This block's input rows, band by band: the band read from grad_x (earlier launches' sums; the
  // caller zeroes grad_x before the first), every tile of the launch in order with each sample
  // touching the band added into it in (tile, pixel, tap) order, the band written back (plain writes:
  // no other block writes these rows).
  __aicore__ inline void OwnRows() {
    const uint32_t rows = n_ * h_, owned = (rows + blockDim_ - 1) / blockDim_;
    const uint32_t own0 = MinU32(GetBlockIdx() * owned, rows), own1 = MinU32(own0 + owned, rows);
    if (own0 >= own1) return;
    // The walk over the launch reads no window: wider tiles (the plan arrays hold them), whose tap
    // constants are made again for their row stride, once the last plan of the own pixels is read.
    tile_ = scanPixels_;
    tileStride_ = (scanPixels_ + 7) / 8 * 8;
    if (planReadPending_) {
      WaitFlag<HardEvent::S_V>(planRead_);
      planReadPending_ = false;
    }
    InitPlanConstants();
    LocalTensor<float> band = bandBuf_.Get<float>();
    bool stored = false;
    for (uint32_t band0 = own0; band0 < own1; band0 += bandRows_) {
      const uint32_t band1 = MinU32(own1, band0 + bandRows_);
      if (stored) {   // the previous band's store has read the buffer and written grad_x
        const event_t written = static_cast<event_t>(pipe_->FetchEventID(HardEvent::MTE3_MTE2));
        SetFlag<HardEvent::MTE3_MTE2>(written);
        WaitFlag<HardEvent::MTE3_MTE2>(written);
      }
      DataCopy(band, gradXGm_[uint64_t(band0) * w_ * c_], (band1 - band0) * w_ * c_);
      const event_t loaded = static_cast<event_t>(pipe_->FetchEventID(HardEvent::MTE2_V));
      SetFlag<HardEvent::MTE2_V>(loaded);
      WaitFlag<HardEvent::MTE2_V>(loaded);
      Tile cur, next;
      StartWalk(0, pixelCount_, false);
      NextTile(cur);
      LoadParams(cur);
      for (;;) {
        const bool more = NextTile(next);
        if (more) LoadParams(next);
        BandTile(cur, band, band0, band1);
        if (!more) break;
        cur = next;
      }
      const event_t ready = static_cast<event_t>(pipe_->FetchEventID(HardEvent::V_MTE3));
      SetFlag<HardEvent::V_MTE3>(ready);
      WaitFlag<HardEvent::V_MTE3>(ready);
      DataCopy(gradXGm_[uint64_t(band0) * w_ * c_], band, (band1 - band0) * w_ * c_);
      stored = true;
    }
  }

  // The samples of tile t whose corner rows touch the band [band0, band1) (flattened rows), in order.
  __aicore__ inline void BandTile(const Tile& t, const LocalTensor<float>& band, uint32_t band0, uint32_t band1) {
    LocalTensor<float> params = paramQue_.DeQue<float>();
    Plan(params, t);
    MaskedWeights(params);
    // touch: inside and image_row0 - 1 <= y0 <= image_row1 - 1 (in this image's rows)
    const int32_t imageRow = int32_t(t.image * h_);
    const uint32_t bits = planLen_;
    const int32_t words = int32_t(planLen_ / 16);
    LocalTensor<uint16_t> win16 = inWin_.ReinterpretCast<uint16_t>(), in16 = inside_.ReinterpretCast<uint16_t>();
    LocalTensor<uint16_t> cmp16 = cmp_.ReinterpretCast<uint16_t>();
    Compares(inWin_, y0_, float(int32_t(band0) - imageRow - 1), CMPMODE::GE, bits);
    And<uint16_t>(win16, win16, in16, words);
    Compares(cmp_, y0_, float(int32_t(band1) - imageRow - 1), CMPMODE::LE, bits);
    And<uint16_t>(win16, win16, cmp16, words);
    paramQue_.FreeTensor(params);
    PlanToScalar();
    LocalTensor<uint32_t> touch = inWin_.ReinterpretCast<uint32_t>();
    touchIndex_ = 0xFFFFFFFFu;
    uint16_t picked[kMaxSubRows];
    uint32_t count = 0;
    // Pixel-major order (p, k) as in the atomic mode; a round of gradient rows per `4 * slots_` samples.
    for (uint32_t p = 0; p < t.count; ++p) {
      for (uint32_t k = 0; k < taps_; ++k) {
        const uint32_t s = k * tileStride_ + p;
        if (((TouchWord(touch, s) >> (s % 32)) & 1u) == 0) continue;
        picked[count++] = uint16_t(s);
        if (count == 4 * slots_ || count == kMaxSubRows) {
          BandRound(t, band, band0, band1, picked, count);
          count = 0;
        }
      }
    }
    if (count > 0) BandRound(t, band, band0, band1, picked, count);
    PlanReadDone();
  }

  // The word of the touch bits holding sample s, read once per 32 samples.
  __aicore__ inline uint32_t TouchWord(const LocalTensor<uint32_t>& touch, uint32_t s) {
    if (s / 32 != touchIndex_) {
      touchIndex_ = s / 32;
      touchBits_ = touch.GetValue(touchIndex_);
    }
    return touchBits_;
  }

  // Gradient rows of `count` picked samples into the staging set, then their corners in the band.
  __aicore__ inline void BandRound(const Tile& t, const LocalTensor<float>& band, uint32_t band0, uint32_t band1,
                                   const uint16_t* picked, uint32_t count) {
    const uint32_t set = round_++ & 1u;
    if (stagePending_[set]) {
      WaitFlag<HardEvent::V_MTE2>(stageFree_[set]);
      stagePending_[set] = false;
    }
    const LocalTensor<float> rows = Slot(set, 0);
    for (uint32_t i = 0; i < count; ++i) {
      const uint32_t s = picked[i], k = s / tileStride_, p = s - k * tileStride_;
      DataCopy(rows[i * c_], gradColumnsGm_[(uint64_t(t.first + p) * taps_ + k) * c_], c_);
    }
    SetFlag<HardEvent::MTE2_V>(stageLoaded_);
    WaitFlag<HardEvent::MTE2_V>(stageLoaded_);
    const UnaryRepeatParams unary(1, 1, 8, 8);
    const uint32_t repeats = c_ / REPEAT_FLOATS;
    for (uint32_t i = 0; i < count; ++i) {
      const uint32_t s = picked[i];
      int32_t y0, x0;
      Floor(s, y0, x0);
      for (uint32_t q = 0; q < 4; ++q) {
        const int32_t y = y0 + int32_t(q / 2), x = x0 + int32_t(q % 2);
        if (y < 0 || y >= int32_t(h_) || x < 0 || x >= int32_t(w_)) continue;   // outside the image
        const uint32_t row = t.image * h_ + uint32_t(y);
        if (row < band0 || row >= band1) continue;                                // another block's row
        Axpy<float, float>(band[((row - band0) * w_ + uint32_t(x)) * c_], rows[i * c_], mw_[q].GetValue(s),
                           REPEAT_FLOATS, repeats, unary);
      }
    }
    SetFlag<HardEvent::V_MTE2>(stageFree_[set]);
    stagePending_[set] = true;
  }

  __aicore__ inline void WaitStages() {
    for (uint32_t set = 0; set < 2; ++set) {
      if (!stagePending_[set]) continue;
      if (deterministic_) {
        WaitFlag<HardEvent::V_MTE2>(stageFree_[set]);
      } else {
        WaitFlag<HardEvent::MTE3_MTE2>(stageFree_[set]);
        WaitFlag<HardEvent::MTE3_V>(stageFreeV_[set]);
      }
      stagePending_[set] = false;
    }
  }

  static constexpr uint32_t kMaxSlots = 8;   // dcn_tiling.cpp: kMaxSlots
  GlobalTensor<float> gradColumnsGm_, gradXGm_, gradOffsetGm_, gradMaskGm_;
  TQue<TPosition::VECIN, 2> gcQue_;
  TQue<TPosition::VECOUT, 2> outQue_;
  TQue<TPosition::VECOUT, 2> gradWinQue_;
  TBuf<TPosition::VECCALC> prodBuf_, dotBuf_, patternBuf_, bandBuf_;
  LocalTensor<float> mw_[4], dots_[4];
  TEventID stageFree_[2], stageFreeV_[2];
  bool stagePending_[2] = {false, false};
  bool deterministic_ = false;
  uint32_t bandRows_ = 0, scanPixels_ = 0, round_ = 0, touchIndex_ = 0xFFFFFFFFu, touchBits_ = 0;
};

}  // namespace mxdcn_kernel

// mask and grad_mask may be null when the tiling says hasMask == 0 (DCNv1).
extern "C" __global__ __aicore__ void mx_dcn_col2im(GM_ADDR x, GM_ADDR offset, GM_ADDR mask, GM_ADDR gradColumns,
                                                   GM_ADDR gradX, GM_ADDR gradOffset, GM_ADDR gradMask,
                                                   GM_ADDR workspace, GM_ADDR tiling) {
  KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIV_ONLY);
  REGISTER_TILING_DEFAULT(mxdcn::DcnTilingData);
  GET_TILING_DATA(tilingData, tiling);
  AscendC::TPipe pipe;
  mxdcn_kernel::DcnCol2im op;
  op.Init(x, offset, mask, gradColumns, gradX, gradOffset, gradMask, tilingData, &pipe);
  op.Process();
}
