"""The AscendC kernel backend for Atlas A2. Placeholder until the kernels land."""
from .base import Backend, unavailable


class AscendCBackend(Backend):
    name = "ascendc"
    device_types = ("npu",)
    description = "AscendC custom kernels for Atlas A2 (kernels_ascend)"

    def available(self):
        return unavailable("the AscendC kernels are not built yet")
