// torch_npu glue of the mx_dcn AscendC custom operators: registers torch.ops.mx_dcn_npu.im2col and
// torch.ops.mx_dcn_npu.col2im (PrivateUse1 = NPU), which launch the aclnn API CANN generates for the
// op package (kernels_ascend). Built by setup.py (build_npu.py) where torch_npu and CANN are found;
// NOT compiled in this repository's CI (no torch_npu or CANN headers there). The algorithm around the
// two launches is mx_dcn/backends/ascendc/algorithm.py; tensors arrive fp32, contiguous: x channels-last,
// offsets and masks as the caller gave them (layouts: kernels_ascend/op_host/mx_dcn_ops.cpp).
//
// A launch goes the way torch_npu's own ops and op-plugin's EXEC_NPU_CMD go (Ascend/op-plugin
// op_plugin/utils/op_api_common.h): aclnn...GetWorkspaceSize on the calling thread, the workspace from
// torch_npu's caching allocator (OpPreparation::unsafe_empty_workspace, freed in stream order), and
// the launch itself queued through at_npu::native::OpCommand's custom handler, so it runs in order on
// torch_npu's task queue without making the host wait for the queue to drain.
// The op package's aclnn library is opened by path (load_op_api, called by the Python side with the
// package it found), so this glue builds without the op package and works with one built later.
#include <dlfcn.h>
#include <torch/extension.h>

#include <memory>
#include <string>
#include <vector>

#include "acl/acl.h"
#include "aclnn/acl_meta.h"
#include "torch_npu/csrc/core/npu/NPUStream.h"
#include "torch_npu/csrc/framework/OpCommand.h"
#include "torch_npu/csrc/framework/utils/OpPreparation.h"

namespace {

// The generated two-stage API of the op package (aclnn_mx_dcn_im2col.h / aclnn_mx_dcn_col2im.h: inputs,
// attributes and outputs in OpDef order, then workspace size and executor).
using Im2colWorkspace = aclnnStatus (*)(const aclTensor*, const aclTensor*, const aclTensor*, const aclIntArray*,
                                        const aclIntArray*, const aclIntArray*, const aclIntArray*,
                                        const aclIntArray*, int64_t, int64_t, const aclTensor*, uint64_t*,
                                        aclOpExecutor**);
using Col2imWorkspace = aclnnStatus (*)(const aclTensor*, const aclTensor*, const aclTensor*, const aclTensor*,
                                        const aclIntArray*, const aclIntArray*, const aclIntArray*,
                                        const aclIntArray*, const aclIntArray*, int64_t, int64_t, int64_t,
                                        const aclTensor*, const aclTensor*, const aclTensor*, uint64_t*,
                                        aclOpExecutor**);
using Launch = aclnnStatus (*)(void*, uint64_t, aclOpExecutor*, aclrtStream);

struct OpApi {
  std::string path;
  Im2colWorkspace im2colWorkspace = nullptr;
  Launch im2col = nullptr;
  Col2imWorkspace col2imWorkspace = nullptr;
  Launch col2im = nullptr;
};

OpApi& Api() {
  static OpApi api;
  return api;
}

template <typename F>
F Symbol(void* handle, const char* name, const std::string& path) {
  void* f = dlsym(handle, name);
  TORCH_CHECK(f != nullptr, "mx_dcn: ", name, " not found in ", path, " (", dlerror(),
              "); the op package does not match this mx_dcn, rebuild it");
  return reinterpret_cast<F>(f);
}

void LoadOpApi(const std::string& path) {
  OpApi& api = Api();
  if (api.path == path) return;
  void* handle = dlopen(path.c_str(), RTLD_LAZY | RTLD_LOCAL);
  TORCH_CHECK(handle != nullptr, "mx_dcn: cannot load the op package's aclnn library ", path, ": ", dlerror());
  api.im2colWorkspace = Symbol<Im2colWorkspace>(handle, "aclnnMxDcnIm2colGetWorkspaceSize", path);
  api.im2col = Symbol<Launch>(handle, "aclnnMxDcnIm2col", path);
  api.col2imWorkspace = Symbol<Col2imWorkspace>(handle, "aclnnMxDcnCol2imGetWorkspaceSize", path);
  api.col2im = Symbol<Launch>(handle, "aclnnMxDcnCol2im", path);
  api.path = path;
}

void CheckTensor(const at::Tensor& t, const char* name, bool halfAllowed) {
  TORCH_CHECK(t.device().type() == c10::DeviceType::PrivateUse1, name, ": expected an NPU tensor, got ", t.device());
  const bool half = t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16;
  TORCH_CHECK(t.scalar_type() == at::kFloat || (halfAllowed && half), name, ": expected float32",
              halfAllowed ? ", float16 or bfloat16" : "", ", got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), name, ": expected a contiguous tensor");
}

aclDataType AclType(const at::Tensor& t) {
  return t.scalar_type() == at::kHalf ? ACL_FLOAT16 : t.scalar_type() == at::kBFloat16 ? ACL_BF16 : ACL_FLOAT;
}

// The acl handles of one launch. They must outlive the queued launch, so the handler owns them.
struct Handles {
  std::vector<aclTensor*> tensors;
  std::vector<aclIntArray*> arrays;
  Handles() = default;
  Handles(const Handles&) = delete;
  Handles& operator=(const Handles&) = delete;
  ~Handles() {
    for (aclTensor* t : tensors) aclDestroyTensor(t);
    for (aclIntArray* a : arrays) aclDestroyIntArray(a);
  }
  // halfAllowed: im2col's columns, float16 / bfloat16 when the cube takes half-precision columns.
  aclTensor* Tensor(const at::Tensor& t, const char* name, bool halfAllowed = false) {
    CheckTensor(t, name, halfAllowed);
    std::vector<int64_t> dims(t.sizes().begin(), t.sizes().end());
    std::vector<int64_t> strides(t.strides().begin(), t.strides().end());
    aclTensor* h = aclCreateTensor(dims.data(), dims.size(), AclType(t), strides.data(), 0, ACL_FORMAT_ND,
                                   dims.data(), dims.size(), t.data_ptr());
    TORCH_CHECK(h != nullptr, name, ": aclCreateTensor failed");
    tensors.push_back(h);
    return h;
  }
  aclTensor* Optional(const c10::optional<at::Tensor>& t, const char* name) {
    return (t.has_value() && t->defined()) ? Tensor(*t, name) : nullptr;
  }
  aclIntArray* Pair(at::IntArrayRef v, const char* name) {
    TORCH_CHECK(v.size() == 2, name, ": expected an (h, w) pair, got ", v.size(), " values");
    aclIntArray* h = aclCreateIntArray(v.data(), v.size());
    TORCH_CHECK(h != nullptr, name, ": aclCreateIntArray failed");
    arrays.push_back(h);
    return h;
  }
};

// Queues the launch of an op whose executor GetWorkspaceSize has made.
void Enqueue(const char* op, Launch launch, std::shared_ptr<Handles> handles, uint64_t workspaceSize,
             aclOpExecutor* executor) {
  aclrtStream stream = c10_npu::getCurrentNPUStream().stream(false);
  void* workspace = nullptr;
  if (workspaceSize > 0) {
    // From torch_npu's caching allocator; freed when this tensor dies, in the stream's order, so the
    // memory is not reused before the queued launch has run.
    at::Tensor buffer = at_npu::native::OpPreparation::unsafe_empty_workspace(workspaceSize);
    workspace = const_cast<void*>(buffer.storage().data());
  }
  at_npu::native::OpCommand cmd;
  cmd.Name(op);
  cmd.SetCustomHandler([op, launch, handles, workspace, workspaceSize, executor, stream]() -> int {
    const aclnnStatus status = launch(workspace, workspaceSize, executor, stream);
    TORCH_CHECK(status == 0, op, " failed (", status, "): ", aclGetRecentErrMsg());
    return status;
  });
  cmd.Run();
}

void RequireApi() {
  TORCH_CHECK(Api().im2col != nullptr, "mx_dcn: the op package's aclnn library is not loaded "
              "(mx_dcn._npu.load_op_api; the ascendc backend calls it)");
}

void Im2col(const at::Tensor& x, const at::Tensor& offset, const c10::optional<at::Tensor>& mask,
            const at::Tensor& columns, at::IntArrayRef kernelSize, at::IntArrayRef stride, at::IntArrayRef padding,
            at::IntArrayRef dilation, at::IntArrayRef outSize, int64_t pixelStart, int64_t pixelCount) {
  RequireApi();
  auto h = std::make_shared<Handles>();
  aclTensor* ax = h->Tensor(x, "x");
  aclTensor* aoff = h->Tensor(offset, "offset");
  aclTensor* amask = h->Optional(mask, "mask");
  aclTensor* acol = h->Tensor(columns, "columns", true);
  uint64_t workspaceSize = 0;
  aclOpExecutor* executor = nullptr;
  const aclnnStatus status = Api().im2colWorkspace(
      ax, aoff, amask, h->Pair(kernelSize, "kernel_size"), h->Pair(stride, "stride"), h->Pair(padding, "padding"),
      h->Pair(dilation, "dilation"), h->Pair(outSize, "out_size"), pixelStart, pixelCount, acol, &workspaceSize,
      &executor);
  TORCH_CHECK(status == 0, "aclnnMxDcnIm2colGetWorkspaceSize failed (", status, "): ", aclGetRecentErrMsg());
  Enqueue("aclnnMxDcnIm2col", Api().im2col, h, workspaceSize, executor);
}

void Col2im(const at::Tensor& x, const at::Tensor& offset, const c10::optional<at::Tensor>& mask,
            const at::Tensor& gradColumns, const at::Tensor& gradX, const at::Tensor& gradOffset,
            const c10::optional<at::Tensor>& gradMask, at::IntArrayRef kernelSize, at::IntArrayRef stride,
            at::IntArrayRef padding, at::IntArrayRef dilation, at::IntArrayRef outSize, int64_t pixelStart,
            int64_t pixelCount, int64_t deterministic) {
  RequireApi();
  const bool hasMask = mask.has_value() && mask->defined();
  TORCH_CHECK(!hasMask || (gradMask.has_value() && gradMask->defined()), "grad_mask: required with a mask");
  TORCH_CHECK(offset.dim() == 4 && offset.size(1) % 2 == 0, "offset: expected (N, 2K, Ho, Wo), got ", offset.sizes());
  // The op always has a grad_mask output; without a mask the kernel leaves this one unwritten.
  const at::Tensor gradMaskOut = hasMask ? *gradMask
      : at::empty({offset.size(0), offset.size(1) / 2, offset.size(2), offset.size(3)}, offset.options());
  auto h = std::make_shared<Handles>();
  aclTensor* ax = h->Tensor(x, "x");
  aclTensor* aoff = h->Tensor(offset, "offset");
  aclTensor* amask = h->Optional(mask, "mask");
  aclTensor* agc = h->Tensor(gradColumns, "grad_columns");
  aclTensor* agx = h->Tensor(gradX, "grad_x");
  aclTensor* agoff = h->Tensor(gradOffset, "grad_offset");
  aclTensor* agm = h->Tensor(gradMaskOut, "grad_mask");
  uint64_t workspaceSize = 0;
  aclOpExecutor* executor = nullptr;
  const aclnnStatus status = Api().col2imWorkspace(
      ax, aoff, amask, agc, h->Pair(kernelSize, "kernel_size"), h->Pair(stride, "stride"),
      h->Pair(padding, "padding"), h->Pair(dilation, "dilation"), h->Pair(outSize, "out_size"), pixelStart,
      pixelCount, deterministic, agx, agoff, agm, &workspaceSize, &executor);
  TORCH_CHECK(status == 0, "aclnnMxDcnCol2imGetWorkspaceSize failed (", status, "): ", aclGetRecentErrMsg());
  Enqueue("aclnnMxDcnCol2im", Api().col2im, h, workspaceSize, executor);
}

}  // namespace

TORCH_LIBRARY(mx_dcn_npu, m) {
  m.def("im2col(Tensor x, Tensor offset, Tensor? mask, Tensor(a!) columns, int[] kernel_size, int[] stride, "
        "int[] padding, int[] dilation, int[] out_size, int pixel_start, int pixel_count) -> ()");
  m.def("col2im(Tensor x, Tensor offset, Tensor? mask, Tensor grad_columns, Tensor(a!) grad_x, "
        "Tensor(b!) grad_offset, Tensor(c!)? grad_mask, int[] kernel_size, int[] stride, int[] padding, "
        "int[] dilation, int[] out_size, int pixel_start, int pixel_count, int deterministic) -> ()");
}

TORCH_LIBRARY_IMPL(mx_dcn_npu, PrivateUse1, m) {
  m.impl("im2col", &Im2col);
  m.impl("col2im", &Col2im);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("load_op_api", &LoadOpApi, "Open the op package's aclnn library (op_api/lib/libcust_opapi.so) by path");
}
