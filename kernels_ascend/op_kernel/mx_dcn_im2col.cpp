// im2col of the deformable convolution on Atlas A2 vector cores:
//   columns[p, k, c] = mask[p, k] * bilinear(x[n(p), :, :, c], sample point of pixel p, tap k)
// The matrix product with the weight runs afterwards on the cube unit (torch matmul through CANN).
//
// Per tile (up to tilePixels pixels of one output row), with the next tile's offsets and window
// already on their way (MTE2 overlaps this tile's vector work):
//   1. the plan of all taps x pixels with vector instructions (dcn_kernel_common.h), then the masks
//      broadcast to one 32-byte block per sample (Brcb); one V -> S hand-off;
//   2. per sub-tile of subRows rows (pixel, tap), for each sample, from four scalar weights: its row
//      = the bilinear blend of its four cells (Muls + 3 Axpy) read from the window; samples outside the
//      window have their corners copied into staging slots in rounds (ping-pong sets, one MTE2 -> V
//      wait per round) and blend from there; outside samples are 0;
//   3. the sub-tile's rows times their masks (one Mul per 64 channels), stored with one DataCopy --
//      narrowed to fp16 / bf16 first (Cast, CAST_RINT) when the cube takes half-precision columns
//      (columnsType; the sampling itself is fp32 whatever the columns' type).
#include "dcn_kernel_common.h"
#include "dcn_tiling_data.h"

namespace mxdcn_kernel {

// T: the columns' element type (float, half or bfloat16_t).
template <typename T>
class DcnIm2col : public DcnKernelBase {
 public:
  template <typename Tiling>
  __aicore__ inline void Init(GM_ADDR x, GM_ADDR offset, GM_ADDR mask, GM_ADDR columns, const Tiling& t, TPipe* pipe) {
    InitBase(t, x, offset, mask, pipe, kCommonPlanArrays);
    columnsGm_.SetGlobalBuffer(reinterpret_cast<__gm__ T*>(columns), uint64_t(pixelCount_) * taps_ * c_);
    if (hasMask_) pipe->InitBuffer(maskBuf_, taps_ * tileStride_ * BLOCK_FLOATS * sizeof(float));
    pipe->InitBuffer(colQue_, 2, subRows_ * c_ * sizeof(float));
    if (kNarrow) pipe->InitBuffer(narrowQue_, 2, subRows_ * c_ * sizeof(T));
    stageFree_[0] = pipe->AllocEventID<HardEvent::V_MTE2>();
    stageFree_[1] = pipe->AllocEventID<HardEvent::V_MTE2>();
  }

  __aicore__ inline void Process() {
    Tile cur, next;
    StartWalk(blockBegin_, blockCount_, true);
    if (!NextTile(cur)) return;
    InitPlanConstants();
    LoadParams(cur);
    LoadWindow(cur);
    for (;;) {
      const bool more = NextTile(next);
      if (more) {   // prefetch: the next window (the largest copy) runs while this tile computes
        LoadParams(next);
        LoadWindow(next);
      }
      Compute(cur);
      if (!more) break;
      cur = next;
    }
    for (uint32_t set = 0; set < 2; ++set) {
      if (stagePending_[set]) WaitFlag<HardEvent::V_MTE2>(stageFree_[set]);
    }
    FinishBase();
  }

 private:
  __aicore__ inline void Compute(const Tile& t) {
    LocalTensor<float> params = paramQue_.DeQue<float>();
    LocalTensor<float> win;
    if (walkWindows_) win = winQue_.DeQue<float>();
    Plan(params, t);
    if (hasMask_) {   // mask of sample (k, t) -> 32-byte block t * taps + k
      LocalTensor<float> masks = maskBuf_.Get<float>();
      for (uint32_t k = 0; k < taps_; ++k) {
        Brcb(masks[k * BLOCK_FLOATS], params[2 * planLen_ + k * tileStride_], uint8_t(tileStride_ / BLOCK_FLOATS),
             BrcbRepeatParams(uint16_t(taps_), uint16_t(BLOCK_FLOATS * taps_)));
      }
    }
    paramQue_.FreeTensor(params);
    PlanToScalar();
    const uint32_t rows = t.count * taps_;
    for (uint32_t r0 = 0; r0 < rows; r0 += subRows_) SubTile(t, win, r0, MinU32(subRows_, rows - r0));
    PlanReadDone();
    if (walkWindows_) winQue_.FreeTensor(win);
  }

  // Column rows [r0, r0 + rows) of the tile; row r = p * taps + k holds sample (pixel p, tap k).
  __aicore__ inline void SubTile(const Tile& t, const LocalTensor<float>& win, uint32_t r0, uint32_t rows) {
    LocalTensor<float> col = colQue_.AllocTensor<float>();
    uint16_t fetchSample[kMaxSubRows], fetchRow[kMaxSubRows];
    uint32_t fetches = 0;
    for (uint32_t row = 0; row < rows; ++row) {
      const uint32_t p = (r0 + row) / taps_, k = r0 + row - p * taps_, s = k * tileStride_ + p;
      const float code = code_.GetValue(s);
      if (code >= 0.0f) {
        Blend(col[row * c_], win[uint32_t(code)], t.cols * c_, s);
      } else if (code == kFetch) {
        fetchSample[fetches] = uint16_t(s);
        fetchRow[fetches++] = uint16_t(row);
      } else {
        Duplicate<float>(col[row * c_], 0.0f, REPEAT_FLOATS, c_ / REPEAT_FLOATS, 1, 8);
      }
    }
    for (uint32_t i0 = 0; i0 < fetches; i0 += slots_) {
      const uint32_t count = MinU32(slots_, fetches - i0), set = round_++ & 1u;
      if (stagePending_[set]) WaitFlag<HardEvent::V_MTE2>(stageFree_[set]);
      for (uint32_t j = 0; j < count; ++j) {
        int32_t y0, x0;
        Floor(fetchSample[i0 + j], y0, x0);
        FetchCorners(Slot(set, j), t.image, y0, x0);
      }
      SetFlag<HardEvent::MTE2_V>(stageLoaded_);
      WaitFlag<HardEvent::MTE2_V>(stageLoaded_);
      for (uint32_t j = 0; j < count; ++j) Blend(col[fetchRow[i0 + j] * c_], Slot(set, j), 2 * c_, fetchSample[i0 + j]);
      SetFlag<HardEvent::V_MTE2>(stageFree_[set]);
      stagePending_[set] = true;
    }
    if (hasMask_) {   // column = mask * sample, also for a sample outside (a NaN/Inf mask poisons it)
      const LocalTensor<float> masks = maskBuf_.Get<float>()[r0 * BLOCK_FLOATS];
      const BinaryRepeatParams byRow(1, 1, 0, c_ / BLOCK_FLOATS, c_ / BLOCK_FLOATS, 1);
      for (uint32_t c0 = 0; c0 < c_; c0 += REPEAT_FLOATS) {
        Mul<float>(col[c0], col[c0], masks, REPEAT_FLOATS, rows, byRow);
      }
    }
    if constexpr (kNarrow) {   // fp32 rows -> 16-bit rows, then those out
      LocalTensor<T> narrow = narrowQue_.template AllocTensor<T>();
      Cast(narrow, col, RoundMode::CAST_RINT, rows * c_);
      colQue_.FreeTensor(col);
      narrowQue_.EnQue(narrow);
      narrow = narrowQue_.template DeQue<T>();
      DataCopy(columnsGm_[(uint64_t(t.first) * taps_ + r0) * c_], narrow, rows * c_);
      narrowQue_.FreeTensor(narrow);
    } else {
      colQue_.EnQue(col);
      col = colQue_.DeQue<float>();
      DataCopy(columnsGm_[(uint64_t(t.first) * taps_ + r0) * c_], col, rows * c_);
      colQue_.FreeTensor(col);
    }
  }

  // row = w00 * cell(0,0) + w01 * cell(0,1) + w10 * cell(1,0) + w11 * cell(1,1); cells C floats apart
  // in a row, rows `pitch` floats apart.
  __aicore__ inline void Blend(const LocalTensor<float>& row, const LocalTensor<float>& cell, uint32_t pitch,
                               uint32_t s) {
    const UnaryRepeatParams unary(1, 1, 8, 8);
    const uint32_t repeats = c_ / REPEAT_FLOATS;
    const float w00 = wt_[0].GetValue(s), w01 = wt_[1].GetValue(s), w10 = wt_[2].GetValue(s), w11 = wt_[3].GetValue(s);
    Muls<float>(row, cell, w00, REPEAT_FLOATS, repeats, unary);
    Axpy<float, float>(row, cell[c_], w01, REPEAT_FLOATS, repeats, unary);
    Axpy<float, float>(row, cell[pitch], w10, REPEAT_FLOATS, repeats, unary);
    Axpy<float, float>(row, cell[pitch + c_], w11, REPEAT_FLOATS, repeats, unary);
  }

  static constexpr bool kNarrow = !std::is_same<T, float>::value;
  GlobalTensor<T> columnsGm_;
  TBuf<TPosition::VECCALC> maskBuf_;
  TQue<TPosition::VECOUT, 2> colQue_, narrowQue_;
  TEventID stageFree_[2];
  bool stagePending_[2] = {false, false};
  uint32_t round_ = 0;
};

}  // namespace mxdcn_kernel

namespace {
template <typename T, typename Tiling>
__aicore__ inline void RunIm2col(GM_ADDR x, GM_ADDR offset, GM_ADDR mask, GM_ADDR columns, const Tiling& t) {
  AscendC::TPipe pipe;
  mxdcn_kernel::DcnIm2col<T> op;
  op.Init(x, offset, mask, columns, t, &pipe);
  op.Process();
}
}  // namespace

// mask may be null when the tiling says hasMask == 0 (DCNv1). columns: float, half or bfloat16_t as
// the tiling's columnsType says (the op's output type).
extern "C" __global__ __aicore__ void mx_dcn_im2col(GM_ADDR x, GM_ADDR offset, GM_ADDR mask, GM_ADDR columns,
                                                   GM_ADDR workspace, GM_ADDR tiling) {
  KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIV_ONLY);
  REGISTER_TILING_DEFAULT(mxdcn::DcnTilingData);
  GET_TILING_DATA(tilingData, tiling);
  if (tilingData.columnsType == mxdcn::kColumnsHalf) {
    RunIm2col<half>(x, offset, mask, columns, tilingData);
  } else if (tilingData.columnsType == mxdcn::kColumnsBf16) {
    RunIm2col<bfloat16_t>(x, offset, mask, columns, tilingData);
  } else {
    RunIm2col<float>(x, offset, mask, columns, tilingData);
  }
}
