// col2im of the deformable convolution on Atlas A2 vector cores: from the gradient of the columns,
//   grad_x      += mask * w_k * grad_col          (scattered with atomic adds: blocks share pixels)
//   grad_offset  = mask * sum_c grad_col * d(bilinear)/d(dy, dx)
//   grad_mask    = sum_c grad_col * bilinear
// grad_x must be zeroed by the caller; grad_offset and grad_mask are fully written.
#include "dcn_kernel_common.h"
#include "dcn_tiling_data.h"

namespace mxdcn_kernel {

class DcnCol2im : public DcnKernelBase {
 public:
  template <typename Tiling>
  __aicore__ inline void Init(GM_ADDR x, GM_ADDR offset, GM_ADDR mask, GM_ADDR gradColumns, GM_ADDR gradX,
                              GM_ADDR gradOffset, GM_ADDR gradMask, const Tiling& t, TPipe* pipe) {
    InitBase(t, x, offset, mask);
    gradColumnsGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(gradColumns), uint64_t(pixelCount_) * taps_ * c_);
    gradXGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(gradX), uint64_t(n_) * h_ * w_ * c_);
    gradOffsetGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(gradOffset), uint64_t(pixelCount_) * taps_ * 2);
    if (hasMask_) gradMaskGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(gradMask), uint64_t(pixelCount_) * taps_);
    // Sizes must match DcnUbBytes(kCol2im, ...) in op_host/dcn_tiling.cpp.
    const uint32_t offsetBytes = AlignBytes(tilePixels_ * taps_ * 2 * sizeof(float));
    const uint32_t maskBytes = AlignBytes(tilePixels_ * taps_ * sizeof(float));
    const uint32_t row = cTile_ * sizeof(float);
    pipe->InitBuffer(offsetBuf_, offsetBytes);
    pipe->InitBuffer(gradOffsetBuf_, offsetBytes);
    if (hasMask_) {
      pipe->InitBuffer(maskBuf_, maskBytes);
      pipe->InitBuffer(gradMaskBuf_, maskBytes);
    }
    pipe->InitBuffer(gradColumnQue_, 1, row);
    pipe->InitBuffer(cornerQue_, 1, 4 * row);
    pipe->InitBuffer(gradXQue_, 1, 4 * row);
    pipe->InitBuffer(blendBuf_, 3 * row);   // value, d/dy, d/dx rows
    pipe->InitBuffer(productBuf_, row);
    pipe->InitBuffer(workBuf_, AlignBytes(cTile_ / REPEAT_FLOATS * sizeof(float)));
    pipe->InitBuffer(sumBuf_, 3 * BLOCK_BYTES);
  }

  __aicore__ inline void Process() {
    LocalTensor<float> offsets = offsetBuf_.Get<float>();
    LocalTensor<float> gradOffsets = gradOffsetBuf_.Get<float>();
    LocalTensor<float> masks, gradMasks;
    if (hasMask_) {
      masks = maskBuf_.Get<float>();
      gradMasks = gradMaskBuf_.Get<float>();
    }
    for (uint32_t t0 = 0; t0 < blockCount_; t0 += tilePixels_) {
      const uint32_t count = MinU32(tilePixels_, blockCount_ - t0);
      LoadTile(offsets, masks, blockBegin_ + t0, count);
      for (uint32_t i = 0; i < count; ++i) Pixel(blockBegin_ + t0 + i, i, offsets, masks, gradOffsets, gradMasks);
      TileReadDone();
      StoreTile(gradOffsets, gradMasks, blockBegin_ + t0, count);
    }
  }

 private:
  __aicore__ inline void Pixel(uint32_t p, uint32_t i, const LocalTensor<float>& offsets,
                               const LocalTensor<float>& masks, const LocalTensor<float>& gradOffsets,
                               const LocalTensor<float>& gradMasks) {
    for (uint32_t ki = 0; ki < kh_; ++ki) {
      for (uint32_t kj = 0; kj < kw_; ++kj) {
        Plan plan;
        uint64_t imageBase;
        float m;
        PlanTap(p, i, ki, kj, offsets, masks, plan, imageBase, m);
        const uint32_t tap = ki * kw_ + kj;
        float dotValue = 0.0f, dotDy = 0.0f, dotDx = 0.0f;
        if (plan.inside) {
          const uint64_t row = (uint64_t(p) * taps_ + tap) * c_;
          for (uint32_t c0 = 0; c0 < c_; c0 += cTile_) {
            Chunk(plan, m, imageBase, row, c0, MinU32(cTile_, c_ - c0), dotValue, dotDy, dotDx);
          }
        }
        gradOffsets.SetValue((i * taps_ + tap) * 2, m * dotDy);
        gradOffsets.SetValue((i * taps_ + tap) * 2 + 1, m * dotDx);
        if (hasMask_) gradMasks.SetValue(i * taps_ + tap, dotValue);
      }
    }
  }

  // One channel chunk of one (pixel, tap): scatter grad x, accumulate the three channel sums.
  __aicore__ inline void Chunk(const Plan& plan, float m, uint64_t imageBase, uint64_t row, uint32_t c0, uint32_t cLen,
                               float& dotValue, float& dotDy, float& dotDx) {
    const uint32_t repeats = cLen / REPEAT_FLOATS;
    const UnaryRepeatParams unary(1, 1, 8, 8);
    LocalTensor<float> gradColumn = gradColumnQue_.AllocTensor<float>();
    DataCopy(gradColumn, gradColumnsGm_[row + c0], cLen);
    gradColumnQue_.EnQue(gradColumn);
    LocalTensor<float> corners = cornerQue_.AllocTensor<float>();
    GatherCorners(corners, plan, imageBase, c0, cLen);
    cornerQue_.EnQue(corners);
    gradColumn = gradColumnQue_.DeQue<float>();
    corners = cornerQue_.DeQue<float>();

    // grad x of each valid corner: mask * w_k * grad_col, added atomically.
    LocalTensor<float> gradX = gradXQue_.AllocTensor<float>();
    for (uint32_t k = 0; k < 4; ++k) {
      if (plan.valid[k]) Muls<float>(gradX[k * cTile_], gradColumn, m * plan.w[k], REPEAT_FLOATS, repeats, unary);
    }
    gradXQue_.EnQue(gradX);
    gradX = gradXQue_.DeQue<float>();
    SetAtomicAdd<float>();
    for (uint32_t k = 0; k < 4; ++k) {
      if (plan.valid[k]) DataCopy(gradXGm_[imageBase + CornerOffset(plan, k) + c0], gradX[k * cTile_], cLen);
    }
    SetAtomicNone();
    gradXQue_.FreeTensor(gradX);

    // value, d value/dy, d value/dx rows, then their dot products with grad_col.
    LocalTensor<float> blend = blendBuf_.Get<float>();
    LocalTensor<float> product = productBuf_.Get<float>();
    LocalTensor<float> work = workBuf_.Get<float>();
    LocalTensor<float> sums = sumBuf_.Get<float>();
    for (uint32_t r = 0; r < 3; ++r) Duplicate<float>(blend[r * cTile_], 0.0f, REPEAT_FLOATS, repeats, 1, 8);
    for (uint32_t k = 0; k < 4; ++k) {
      if (!plan.valid[k]) continue;
      const LocalTensor<float> corner = corners[k * cTile_];
      Axpy<float, float>(blend, corner, plan.w[k], REPEAT_FLOATS, repeats, unary);
      Axpy<float, float>(blend[cTile_], corner, plan.dwdy[k], REPEAT_FLOATS, repeats, unary);
      Axpy<float, float>(blend[2 * cTile_], corner, plan.dwdx[k], REPEAT_FLOATS, repeats, unary);
    }
    for (uint32_t r = 0; r < 3; ++r) {
      Mul<float>(product, gradColumn, blend[r * cTile_], REPEAT_FLOATS, repeats, BinaryRepeatParams(1, 1, 1, 8, 8, 8));
      ReduceSum<float>(sums[r * BLOCK_FLOATS], product, work, REPEAT_FLOATS, repeats, 8);
    }
    event_t ev = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::V_S));
    SetFlag<HardEvent::V_S>(ev);
    WaitFlag<HardEvent::V_S>(ev);
    dotValue += sums.GetValue(0);
    dotDy += sums.GetValue(BLOCK_FLOATS);
    dotDx += sums.GetValue(2 * BLOCK_FLOATS);
    // The next chunk's ReduceSum overwrites the sums: the vector pipe waits for these scalar reads.
    event_t readDone = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::S_V));
    SetFlag<HardEvent::S_V>(readDone);
    WaitFlag<HardEvent::S_V>(readDone);
    gradColumnQue_.FreeTensor(gradColumn);
    cornerQue_.FreeTensor(corners);
  }

  __aicore__ inline void StoreTile(const LocalTensor<float>& gradOffsets, const LocalTensor<float>& gradMasks,
                                   uint32_t first, uint32_t count) {
    event_t toMte3 = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::S_MTE3));
    SetFlag<HardEvent::S_MTE3>(toMte3);
    WaitFlag<HardEvent::S_MTE3>(toMte3);
    DataCopyExtParams cp;
    cp.blockCount = 1;
    cp.blockLen = count * taps_ * 2 * sizeof(float);
    DataCopyPad(gradOffsetGm_[uint64_t(first) * taps_ * 2], gradOffsets, cp);
    if (hasMask_) {
      cp.blockLen = count * taps_ * sizeof(float);
      DataCopyPad(gradMaskGm_[uint64_t(first) * taps_], gradMasks, cp);
    }
    // The next tile's scalar writes must wait until these copies have read the buffers.
    event_t toS = static_cast<event_t>(GetTPipePtr()->FetchEventID(HardEvent::MTE3_S));
    SetFlag<HardEvent::MTE3_S>(toS);
    WaitFlag<HardEvent::MTE3_S>(toS);
  }

  GlobalTensor<float> gradColumnsGm_, gradXGm_, gradOffsetGm_, gradMaskGm_;
  TBuf<TPosition::VECCALC> offsetBuf_, maskBuf_, gradOffsetBuf_, gradMaskBuf_;
  TBuf<TPosition::VECCALC> blendBuf_, productBuf_, workBuf_, sumBuf_;
  TQue<TPosition::VECIN, 1> gradColumnQue_, cornerQue_;
  TQue<TPosition::VECOUT, 1> gradXQue_;
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
