"""The C++ CPU kernel backend: the registered op torch.ops.mx_dcn.deform_conv2d (mx_dcn/ops.py,
kernels in mx_dcn/csrc/cpu). Available when the extension mx_dcn._C is built; it takes every valid
CPU call (any kernel size, stride, padding, dilation, groups, deformable groups, the four floating
dtypes, any memory layout)."""
from .base import AVAILABLE, Backend, unavailable


class CpuBackend(Backend):
    name = "cpu"
    device_types = ("cpu",)
    description = "C++ CPU kernels (mx_dcn._C): channels-last sampling, cache-tiled GEMM, deterministic backward"

    def available(self):
        from .. import ops
        error = ops.load_error()
        return AVAILABLE if error is None else unavailable(error)

    def run(self, problem, x, offset, mask, weight, bias):
        from .. import ops
        return ops.deform_conv2d(x, offset, mask, weight, bias, problem.stride, problem.padding,
                                 problem.dilation, problem.groups, problem.deformable_groups)
