// im2col of the deformable convolution on Atlas A2 vector cores:
//   columns[p, k, c] = mask[p, k] * bilinear(x[n(p), :, :, c], sample point of pixel p, tap k)
// The matrix product with the weight runs afterwards on the cube unit (torch matmul through CANN).
#include "dcn_kernel_common.h"
#include "dcn_tiling_data.h"

namespace mxdcn_kernel {

class DcnIm2col : public DcnKernelBase {
 public:
  template <typename Tiling>
  __aicore__ inline void Init(GM_ADDR x, GM_ADDR offset, GM_ADDR mask, GM_ADDR columns, const Tiling& t, TPipe* pipe) {
    InitBase(t, x, offset, mask);
    columnsGm_.SetGlobalBuffer(reinterpret_cast<__gm__ float*>(columns), uint64_t(pixelCount_) * taps_ * c_);
    // Sizes must match DcnUbBytes(kIm2col, ...) in op_host/dcn_tiling.cpp.
    pipe->InitBuffer(offsetBuf_, AlignBytes(tilePixels_ * taps_ * 2 * sizeof(float)));
    if (hasMask_) pipe->InitBuffer(maskBuf_, AlignBytes(tilePixels_ * taps_ * sizeof(float)));
    pipe->InitBuffer(cornerQue_, 2, 4 * cTile_ * sizeof(float));
    pipe->InitBuffer(columnQue_, 2, cTile_ * sizeof(float));
  }

  __aicore__ inline void Process() {
    LocalTensor<float> offsets = offsetBuf_.Get<float>();
    LocalTensor<float> masks;
    if (hasMask_) masks = maskBuf_.Get<float>();
    for (uint32_t t0 = 0; t0 < blockCount_; t0 += tilePixels_) {
      const uint32_t count = MinU32(tilePixels_, blockCount_ - t0);
      LoadTile(offsets, masks, blockBegin_ + t0, count);
      for (uint32_t i = 0; i < count; ++i) Pixel(blockBegin_ + t0 + i, i, offsets, masks);
      TileReadDone();
    }
  }

 private:
  __aicore__ inline void Pixel(uint32_t p, uint32_t i, const LocalTensor<float>& offsets, const LocalTensor<float>& masks) {
    for (uint32_t ki = 0; ki < kh_; ++ki) {
      for (uint32_t kj = 0; kj < kw_; ++kj) {
        Plan plan;
        uint64_t imageBase;
        float m;
        PlanTap(p, i, ki, kj, offsets, masks, plan, imageBase, m);
        const uint64_t row = (uint64_t(p) * taps_ + ki * kw_ + kj) * c_;
        for (uint32_t c0 = 0; c0 < c_; c0 += cTile_) {
          const uint32_t cLen = MinU32(cTile_, c_ - c0);
          const uint32_t repeats = cLen / REPEAT_FLOATS;
          // column = mask * sample, also for a sample outside (value 0): a NaN/Inf mask poisons it
          // (docs/numerics.md). In-image corners are read even at weight 0; others never.
          LocalTensor<float> column = columnQue_.AllocTensor<float>();
          Duplicate<float>(column, plan.inside ? 0.0f : m * 0.0f, REPEAT_FLOATS, repeats, 1, 8);
          if (plan.inside) {
            const UnaryRepeatParams unary(1, 1, 8, 8);
            LocalTensor<float> corners = cornerQue_.AllocTensor<float>();
            GatherCorners(corners, plan, imageBase, c0, cLen);
            cornerQue_.EnQue(corners);
            corners = cornerQue_.DeQue<float>();
            for (uint32_t k = 0; k < 4; ++k) {
              if (plan.valid[k]) Axpy<float, float>(column, corners[k * cTile_], plan.w[k], REPEAT_FLOATS, repeats, unary);
            }
            Muls<float>(column, column, m, REPEAT_FLOATS, repeats, unary);
            cornerQue_.FreeTensor(corners);
          }
          columnQue_.EnQue(column);
          column = columnQue_.DeQue<float>();
          DataCopy(columnsGm_[row + c0], column, cLen);
          columnQue_.FreeTensor(column);
        }
      }
    }
  }

  GlobalTensor<float> columnsGm_;
  TBuf<TPosition::VECCALC> offsetBuf_, maskBuf_;
  TQue<TPosition::VECIN, 2> cornerQue_;
  TQue<TPosition::VECOUT, 2> columnQue_;
};

}  // namespace mxdcn_kernel

// mask may be null when the tiling says hasMask == 0 (DCNv1).
extern "C" __global__ __aicore__ void mx_dcn_im2col(GM_ADDR x, GM_ADDR offset, GM_ADDR mask, GM_ADDR columns,
                                                   GM_ADDR workspace, GM_ADDR tiling) {
  KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIV_ONLY);
  REGISTER_TILING_DEFAULT(mxdcn::DcnTilingData);
  GET_TILING_DATA(tilingData, tiling);
  AscendC::TPipe pipe;
  mxdcn_kernel::DcnIm2col op;
  op.Init(x, offset, mask, columns, tilingData, &pipe);
  op.Process();
}
