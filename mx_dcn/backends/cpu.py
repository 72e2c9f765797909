"""The C++ CPU kernel backend (mx_dcn._C). Placeholder until the kernel lands."""
from .base import Backend, unavailable


class CpuBackend(Backend):
    name = "cpu"
    device_types = ("cpu",)
    description = "C++ CPU kernels (mx_dcn._C)"

    def available(self):
        return unavailable("the C++ CPU kernel is not built yet")
