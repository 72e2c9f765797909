// Op definitions and tiling entries of the mx_dcn custom operators for Atlas A2:
//   MxDcnIm2col(x, offset, mask?) -> columns
//   MxDcnCol2im(x, offset, mask?, grad_columns) -> grad_x (accumulated: pass zeros before the first
//     launch), grad_offset, grad_mask (written at the launch's pixels)
// Layouts (contiguous; fp32, except im2col's columns: fp32, fp16 or bf16): x (N, H, W, C); offset (N, 2K, Ho, Wo) with channels (k, [dy, dx]);
// mask (N, K, Ho, Wo); columns / grad_columns (P, K, C); P = pixel_count output pixels of the launch,
// starting at global pixel `pixel_start` of the flattened (N, Ho, Wo). Attributes: kernel_size,
// stride, padding, dilation, out_size as [h, w] pairs, pixel_start, pixel_count; col2im also
// deterministic (0: grad_x by atomic adds; 1: summed in a fixed order, see mx_dcn_col2im.cpp).
// The tiling entry only reads shapes and platform facts; the decisions are ComputeDcnTiling's
// (dcn_tiling.cpp), the function the CPU model and the tests run too.
#include "dcn_tiling.h"
#include "register/op_def_registry.h"
#include "tiling/platform/platform_ascendc.h"

namespace optiling {
namespace {

enum InputIndex { kX = 0, kOffset = 1, kMask = 2 };
enum AttrIndex { kKernelSize = 0, kStride, kPadding, kDilation, kOutSize, kPixelStart, kPixelCount, kDeterministic };

bool Pair(const gert::RuntimeAttrs* attrs, int index, uint64_t& first, uint64_t& second) {
  const gert::ContinuousVector* v = attrs->GetListInt(index);
  if (v == nullptr || v->GetSize() != 2) return false;
  const int64_t* data = static_cast<const int64_t*>(v->GetData());
  if (data[0] < 0 || data[1] < 0) return false;
  first = static_cast<uint64_t>(data[0]);
  second = static_cast<uint64_t>(data[1]);
  return true;
}

ge::graphStatus TileDcn(gert::TilingContext* context, mxdcn::KernelKind kind) {
  if (context == nullptr || context->GetPlatformInfo() == nullptr) return ge::GRAPH_FAILED;
  platform_ascendc::PlatformAscendC platform(context->GetPlatformInfo());
  uint64_t ub = 0;
  platform.GetCoreMemSize(platform_ascendc::CoreMemType::UB, ub);
  mxdcn::PlatformFacts facts;
  facts.coreNum = platform.GetCoreNumAiv();
  facts.ubBytes = static_cast<uint32_t>(ub < mxdcn::kDefaultUbBytes ? ub : mxdcn::kDefaultUbBytes);

  const gert::StorageShape* x = context->GetInputShape(kX);
  const gert::StorageShape* offset = context->GetInputShape(kOffset);
  const gert::RuntimeAttrs* attrs = context->GetAttrs();
  if (x == nullptr || offset == nullptr || attrs == nullptr) return ge::GRAPH_FAILED;
  const gert::Shape& xs = x->GetStorageShape();
  const gert::Shape& os = offset->GetStorageShape();
  if (xs.GetDimNum() != 4 || os.GetDimNum() != 4) return ge::GRAPH_FAILED;

  mxdcn::DcnShape s;
  s.n = xs.GetDim(0); s.h = xs.GetDim(1); s.w = xs.GetDim(2); s.c = xs.GetDim(3);
  if (!Pair(attrs, kKernelSize, s.kh, s.kw) || !Pair(attrs, kStride, s.strideH, s.strideW) ||
      !Pair(attrs, kPadding, s.padH, s.padW) || !Pair(attrs, kDilation, s.dilationH, s.dilationW) ||
      !Pair(attrs, kOutSize, s.ho, s.wo)) {
    return ge::GRAPH_FAILED;
  }
  const int64_t* pixelStart = attrs->GetInt(kPixelStart);
  const int64_t* pixelCount = attrs->GetInt(kPixelCount);
  if (pixelStart == nullptr || *pixelStart < 0 || pixelCount == nullptr || *pixelCount < 0) return ge::GRAPH_FAILED;
  s.pixelStart = static_cast<uint64_t>(*pixelStart);
  s.pixelCount = static_cast<uint64_t>(*pixelCount);
  s.hasMask = context->GetOptionalInputShape(kMask) != nullptr;
  s.deterministic = false;
  s.columnsType = mxdcn::kColumnsFloat;
  if (kind == mxdcn::KernelKind::kIm2col) {
    const gert::CompileTimeTensorDesc* columns = context->GetOutputDesc(0);
    if (columns == nullptr) return ge::GRAPH_FAILED;
    const ge::DataType type = columns->GetDataType();
    s.columnsType = type == ge::DT_FLOAT16 ? mxdcn::kColumnsHalf : type == ge::DT_BF16 ? mxdcn::kColumnsBf16
                                                                                        : mxdcn::kColumnsFloat;
  }
  if (kind == mxdcn::KernelKind::kCol2im) {
    const int64_t* deterministic = attrs->GetInt(kDeterministic);
    if (deterministic == nullptr) return ge::GRAPH_FAILED;
    s.deterministic = *deterministic != 0;
  }
  if (static_cast<uint64_t>(os.GetDim(0)) != s.n || static_cast<uint64_t>(os.GetDim(1)) != 2 * s.kh * s.kw ||
      static_cast<uint64_t>(os.GetDim(2)) != s.ho || static_cast<uint64_t>(os.GetDim(3)) != s.wo) {
    return ge::GRAPH_FAILED;
  }

  const mxdcn::TilingResult r = mxdcn::ComputeDcnTiling(kind, s, facts);
  if (r.status != mxdcn::TilingStatus::kOk) return ge::GRAPH_FAILED;   // mx_dcn checks this before launching
  *context->GetTilingData<mxdcn::DcnTilingData>() = r.data;
  context->SetBlockDim(r.data.blockDim);
  size_t* workspace = context->GetWorkspaceSizes(1);
  if (workspace == nullptr) return ge::GRAPH_FAILED;
  workspace[0] = platform.GetLibApiWorkSpaceSize();   // no user workspace
  return ge::GRAPH_SUCCESS;
}

ge::graphStatus TilingIm2col(gert::TilingContext* context) { return TileDcn(context, mxdcn::KernelKind::kIm2col); }
ge::graphStatus TilingCol2im(gert::TilingContext* context) { return TileDcn(context, mxdcn::KernelKind::kCol2im); }

}  // namespace
}  // namespace optiling

namespace ge {
namespace {

ge::graphStatus InferIm2col(gert::InferShapeContext* context) {
  const gert::Shape* x = context->GetInputShape(0);
  const gert::Shape* offset = context->GetInputShape(1);
  gert::Shape* columns = context->GetOutputShape(0);
  const gert::RuntimeAttrs* attrs = context->GetAttrs();
  if (x == nullptr || offset == nullptr || columns == nullptr || attrs == nullptr) return GRAPH_FAILED;
  const int64_t* pixelCount = attrs->GetInt(6);   // pixel_count
  if (pixelCount == nullptr) return GRAPH_FAILED;
  *columns = gert::Shape({*pixelCount, offset->GetDim(1) / 2, x->GetDim(3)});
  return GRAPH_SUCCESS;
}

ge::graphStatus InferCol2im(gert::InferShapeContext* context) {
  const gert::Shape* x = context->GetInputShape(0);
  const gert::Shape* offset = context->GetInputShape(1);
  gert::Shape* gradX = context->GetOutputShape(0);
  gert::Shape* gradOffset = context->GetOutputShape(1);
  gert::Shape* gradMask = context->GetOutputShape(2);
  if (x == nullptr || offset == nullptr || gradX == nullptr || gradOffset == nullptr || gradMask == nullptr) {
    return GRAPH_FAILED;
  }
  *gradX = *x;
  *gradOffset = *offset;
  *gradMask = gert::Shape({offset->GetDim(0), offset->GetDim(1) / 2, offset->GetDim(2), offset->GetDim(3)});
  return GRAPH_SUCCESS;
}

// The columns' type is the caller's choice (the output tensor it passes); float32 by default.
ge::graphStatus InferFloatIm2col(gert::InferDataTypeContext* context) {
  const ge::DataType given = context->GetOutputDataType(0);
  const bool half = given == ge::DT_FLOAT16 || given == ge::DT_BF16;
  context->SetOutputDataType(0, half ? given : ge::DT_FLOAT);
  return GRAPH_SUCCESS;
}

ge::graphStatus InferFloatCol2im(gert::InferDataTypeContext* context) {
  for (size_t i = 0; i < 3; ++i) context->SetOutputDataType(i, ge::DT_FLOAT);
  return GRAPH_SUCCESS;
}

}  // namespace
}  // namespace ge

namespace ops {

static void DcnAttrs(OpDef& op) {
  op.Attr("kernel_size").ListInt();
  op.Attr("stride").ListInt();
  op.Attr("padding").ListInt();
  op.Attr("dilation").ListInt();
  op.Attr("out_size").ListInt();
  op.Attr("pixel_start").Int();
  op.Attr("pixel_count").Int();
}

// im2col's columns are float32, or float16 / bfloat16 for a cube fed half-precision columns (the
// sampling is float32 in every case): three type combinations.
class MxDcnIm2col : public OpDef {
 public:
  explicit MxDcnIm2col(const char* name) : OpDef(name) {
    const std::vector<ge::DataType> f32 = {ge::DT_FLOAT, ge::DT_FLOAT, ge::DT_FLOAT};
    const std::vector<ge::Format> nd = {ge::FORMAT_ND, ge::FORMAT_ND, ge::FORMAT_ND};
    this->Input("x").ParamType(REQUIRED).DataType(f32).Format(nd);
    this->Input("offset").ParamType(REQUIRED).DataType(f32).Format(nd);
    this->Input("mask").ParamType(OPTIONAL).DataType(f32).Format(nd);
    this->Output("columns").ParamType(REQUIRED).DataType({ge::DT_FLOAT, ge::DT_FLOAT16, ge::DT_BF16}).Format(nd);
    DcnAttrs(*this);
    this->SetInferShape(ge::InferIm2col).SetInferDataType(ge::InferFloatIm2col);
    this->AICore().SetTiling(optiling::TilingIm2col).AddConfig("ascend910b");
  }
};
OP_ADD(MxDcnIm2col);

class MxDcnCol2im : public OpDef {
 public:
  explicit MxDcnCol2im(const char* name) : OpDef(name) {
    this->Input("x").ParamType(REQUIRED).DataType({ge::DT_FLOAT}).Format({ge::FORMAT_ND});
    this->Input("offset").ParamType(REQUIRED).DataType({ge::DT_FLOAT}).Format({ge::FORMAT_ND});
    this->Input("mask").ParamType(OPTIONAL).DataType({ge::DT_FLOAT}).Format({ge::FORMAT_ND});
    this->Input("grad_columns").ParamType(REQUIRED).DataType({ge::DT_FLOAT}).Format({ge::FORMAT_ND});
    this->Output("grad_x").ParamType(REQUIRED).DataType({ge::DT_FLOAT}).Format({ge::FORMAT_ND});
    this->Output("grad_offset").ParamType(REQUIRED).DataType({ge::DT_FLOAT}).Format({ge::FORMAT_ND});
    this->Output("grad_mask").ParamType(REQUIRED).DataType({ge::DT_FLOAT}).Format({ge::FORMAT_ND});
    DcnAttrs(*this);
    this->Attr("deterministic").Int();
    this->SetInferShape(ge::InferCol2im).SetInferDataType(ge::InferFloatCol2im);
    this->AICore().SetTiling(optiling::TilingCol2im).AddConfig("ascend910b");
  }
};
OP_ADD(MxDcnCol2im);

}  // namespace ops
