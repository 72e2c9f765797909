// torch_npu glue for the mx_dcn AscendC custom operators: registers torch.ops.mx_dcn_npu.im2col and
// torch.ops.mx_dcn_npu.col2im (PrivateUse1 = NPU), which call the aclnn API that CANN generates for
// the custom-op package (kernels_ascend). Built only where torch_npu and CANN are installed
// (setup_npu.py); NOT compiled in this repository's CI. The algorithm around these two calls is
// mx_dcn/backends/ascendc/algorithm.py; the tensors arrive fp32, contiguous, channels-last (see
// kernels_ascend/op_host/mx_dcn_ops.cpp for the layouts).
#include <torch/extension.h>

#include <vector>

#include "acl/acl.h"
#include "aclnn/acl_meta.h"
#include "aclnn_mx_dcn_col2im.h"
#include "aclnn_mx_dcn_im2col.h"
#include "torch_npu/csrc/core/npu/NPUStream.h"

namespace {

void Check(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().type() == c10::DeviceType::PrivateUse1, name, ": expected an NPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, ": expected float32, got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), name, ": expected a contiguous tensor");
}

// RAII owners of the acl handles for one call.
struct AclTensor {
  aclTensor* handle = nullptr;
  AclTensor(const at::Tensor& t, const char* name) {
    Check(t, name);
    std::vector<int64_t> dims(t.sizes().begin(), t.sizes().end());
    std::vector<int64_t> strides(t.strides().begin(), t.strides().end());
    handle = aclCreateTensor(dims.data(), dims.size(), ACL_FLOAT, strides.data(), 0, ACL_FORMAT_ND, dims.data(),
                             dims.size(), t.data_ptr());
    TORCH_CHECK(handle != nullptr, name, ": aclCreateTensor failed");
  }
  AclTensor(const AclTensor&) = delete;
  AclTensor& operator=(const AclTensor&) = delete;
  ~AclTensor() { if (handle) aclDestroyTensor(handle); }
};

struct AclInts {
  aclIntArray* handle = nullptr;
  explicit AclInts(at::IntArrayRef v) {
    TORCH_CHECK(v.size() == 2, "expected an (h, w) pair, got ", v.size(), " values");
    handle = aclCreateIntArray(v.data(), v.size());
  }
  AclInts(const AclInts&) = delete;
  AclInts& operator=(const AclInts&) = delete;
  ~AclInts() { if (handle) aclDestroyIntArray(handle); }
};

// Runs a generated aclnn op: query the workspace, allocate it on the current stream, launch.
template <typename GetWorkspace, typename Launch>
void Run(const char* op, const at::Tensor& like, GetWorkspace getWorkspace, Launch launch) {
  uint64_t workspaceSize = 0;
  aclOpExecutor* executor = nullptr;
  TORCH_CHECK(getWorkspace(&workspaceSize, &executor) == ACL_SUCCESS, op, ": GetWorkspaceSize failed (",
              aclGetRecentErrMsg(), ")");
  at::Tensor workspace;
  void* workspacePtr = nullptr;
  if (workspaceSize > 0) {
    workspace = at::empty({static_cast<int64_t>(workspaceSize)}, like.options().dtype(at::kByte));
    workspacePtr = workspace.data_ptr();
  }
  aclrtStream stream = c10_npu::getCurrentNPUStream().stream();
  TORCH_CHECK(launch(workspacePtr, workspaceSize, executor, stream) == ACL_SUCCESS, op, ": launch failed (",
              aclGetRecentErrMsg(), ")");
}

void Im2col(const at::Tensor& x, const at::Tensor& offset, const c10::optional<at::Tensor>& mask,
            const at::Tensor& columns, at::IntArrayRef kernelSize, at::IntArrayRef stride, at::IntArrayRef padding,
            at::IntArrayRef dilation, at::IntArrayRef outSize, int64_t pixelStart) {
  AclTensor ax(x, "x"), aoff(offset, "offset"), acol(columns, "columns");
  c10::optional<AclTensor> maskHolder;
  AclTensor* amask = (mask.has_value() && mask->defined()) ? &maskHolder.emplace(*mask, "mask") : nullptr;
  AclInts k(kernelSize), s(stride), p(padding), d(dilation), o(outSize);
  Run("aclnnMxDcnIm2col", x,
      [&](uint64_t* size, aclOpExecutor** exec) {
        return aclnnMxDcnIm2colGetWorkspaceSize(ax.handle, aoff.handle, amask ? amask->handle : nullptr, k.handle,
                                                s.handle, p.handle, d.handle, o.handle, pixelStart, acol.handle,
                                                size, exec);
      },
      [&](void* ws, uint64_t size, aclOpExecutor* exec, aclrtStream stream) {
        return aclnnMxDcnIm2col(ws, size, exec, stream);
      });
}

void Col2im(const at::Tensor& x, const at::Tensor& offset, const c10::optional<at::Tensor>& mask,
            const at::Tensor& gradColumns, const at::Tensor& gradX, const at::Tensor& gradOffset,
            const c10::optional<at::Tensor>& gradMask, at::IntArrayRef kernelSize, at::IntArrayRef stride,
            at::IntArrayRef padding, at::IntArrayRef dilation, at::IntArrayRef outSize, int64_t pixelStart) {
  const bool hasMask = mask.has_value() && mask->defined();
  TORCH_CHECK(!hasMask || (gradMask.has_value() && gradMask->defined()), "grad_mask: required with a mask");
  // The op always has a grad_mask output; without a mask the kernel leaves this one unwritten.
  at::Tensor gradMaskOut = hasMask ? *gradMask : at::empty({offset.size(0), offset.size(1)}, offset.options());
  AclTensor ax(x, "x"), aoff(offset, "offset"), agc(gradColumns, "grad_columns"), agx(gradX, "grad_x"),
      agoff(gradOffset, "grad_offset"), agm(gradMaskOut, "grad_mask");
  c10::optional<AclTensor> maskHolder;
  AclTensor* amask = hasMask ? &maskHolder.emplace(*mask, "mask") : nullptr;
  AclInts k(kernelSize), s(stride), p(padding), d(dilation), o(outSize);
  Run("aclnnMxDcnCol2im", x,
      [&](uint64_t* size, aclOpExecutor** exec) {
        return aclnnMxDcnCol2imGetWorkspaceSize(ax.handle, aoff.handle, amask ? amask->handle : nullptr, agc.handle,
                                                k.handle, s.handle, p.handle, d.handle, o.handle, pixelStart,
                                                agx.handle, agoff.handle, agm.handle, size, exec);
      },
      [&](void* ws, uint64_t size, aclOpExecutor* exec, aclrtStream stream) {
        return aclnnMxDcnCol2im(ws, size, exec, stream);
      });
}

}  // namespace

TORCH_LIBRARY(mx_dcn_npu, m) {
  m.def("im2col(Tensor x, Tensor offset, Tensor? mask, Tensor(a!) columns, int[] kernel_size, int[] stride, "
        "int[] padding, int[] dilation, int[] out_size, int pixel_start) -> ()");
  m.def("col2im(Tensor x, Tensor offset, Tensor? mask, Tensor grad_columns, Tensor(a!) grad_x, "
        "Tensor(b!) grad_offset, Tensor(c!)? grad_mask, int[] kernel_size, int[] stride, int[] padding, "
        "int[] dilation, int[] out_size, int pixel_start) -> ()");
}

TORCH_LIBRARY_IMPL(mx_dcn_npu, PrivateUse1, m) {
  m.impl("im2col", &Im2col);
  m.impl("col2im", &Col2im);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {}
