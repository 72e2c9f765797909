"""CANN's built-in deformable convolution through torch_npu. Placeholder until it lands."""
from .base import Backend, unavailable


class CannBackend(Backend):
    name = "cann"
    device_types = ("npu",)
    description = "torch_npu.npu_deformable_conv2d (CANN built-in)"

    def available(self):
        return unavailable("not implemented yet")
