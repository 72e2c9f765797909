// The operator schemas of mx_dcn (one place for every device). Device kernels are registered with
// TORCH_LIBRARY_IMPL(mx_dcn, CPU / CUDA, m) in mx_dcn/csrc/cpu and mx_dcn/csrc/cuda, the autograd
// kernel for every device in mx_dcn/csrc/autograd.cpp; the fake (meta) kernels are registered once,
// device-independently, in mx_dcn/ops.py.
//
// deform_conv2d_backward returns (grad_input, grad_offset, grad_mask, grad_weight, grad_bias).
// output_mask selects which are computed; an unselected gradient, and the gradient of an absent
// mask or bias, is returned as an empty tensor of shape (0,).
// torch/library.h and pybind11, not torch/extension.h: that pulls in the whole C++ frontend and made
// this file the longest compilation of the extension (43 s of a ~2 min build on 2 cores).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/library.h>

#include "cpu/buffer_cache.h"
#include "cpu/dispatch_info.h"
#include "workspace_stats.h"

TORCH_LIBRARY(mx_dcn, m) {
  m.def("deform_conv2d(Tensor input, Tensor offset, Tensor? mask, Tensor weight, Tensor? bias, "
        "SymInt[2] stride, SymInt[2] padding, SymInt[2] dilation, SymInt groups, "
        "SymInt deformable_groups) -> Tensor");
  m.def("deform_conv2d_backward(Tensor grad_output, Tensor input, Tensor offset, Tensor? mask, "
        "Tensor weight, Tensor? bias, SymInt[2] stride, SymInt[2] padding, SymInt[2] dilation, "
        "SymInt groups, SymInt deformable_groups, bool[5] output_mask) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

// A Python module so that `import mx_dcn._C` loads the library (and its registrations), plus the
// workspace controls the kernels read.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("set_workspace_budget", &mx_dcn::set_workspace_budget,
        "Bytes of temporary buffers one call may hold (mx_dcn.workspace keeps it in sync).");
  m.def("get_workspace_budget", &mx_dcn::get_workspace_budget);
  m.def("workspace_peak_bytes", &mx_dcn::workspace_peak_bytes,
        "Largest workspace (bytes) a kernel call held at once since the last reset.");
  m.def("reset_workspace_peak", &mx_dcn::reset_workspace_peak);
  m.def("set_workspace_cache_limit", &mx_dcn::cpu::set_workspace_cache_limit,
        "Bytes of CPU workspace buffers kept between calls (0: none).");
  m.def("workspace_cache_limit", &mx_dcn::cpu::workspace_cache_limit);
  m.def("workspace_cache_bytes", &mx_dcn::cpu::workspace_cache_bytes,
        "Bytes of CPU workspace buffers kept between calls now.");
  m.def("release_workspace_cache", &mx_dcn::cpu::release_workspace_cache,
        "Frees the CPU workspace buffers kept between calls.");
  m.def("kernel_isa", &mx_dcn::kernel_isa, "Instruction set the CPU sampling kernels dispatched to.");
  m.def("kernel_gemm", &mx_dcn::kernel_gemm,
        "Who runs the CPU kernel's float32 matrix products: 'own' (mx_dcn's AVX-512 GEMM) or 'blas'.");
  m.def("forward_tile_rows", &mx_dcn::forward_tile_rows,
        "Rows per tile of a float32 forward of this problem under the current budget (the M of its products).",
        pybind11::arg("n"), pybind11::arg("c"), pybind11::arg("h"), pybind11::arg("w"), pybind11::arg("c_out"),
        pybind11::arg("kernel") = 3, pybind11::arg("stride") = 1, pybind11::arg("padding") = 1,
        pybind11::arg("dilation") = 1, pybind11::arg("groups") = 1, pybind11::arg("deformable_groups") = 1);
  m.def("gemm_seconds", &mx_dcn::gemm_seconds, "Seconds per call of a float32 M x K by K x N product on this thread "
        "by the CPU kernel's own GEMM ('own') or the BLAS ('blas'), one entry per repeat.",
        pybind11::arg("M"), pybind11::arg("N"), pybind11::arg("K"), pybind11::arg("which"), pybind11::arg("repeats"));
}
