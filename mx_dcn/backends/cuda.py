"""The CUDA kernel backend. Placeholder until the kernels land."""
from .base import Backend, unavailable


class CudaBackend(Backend):
    name = "cuda"
    device_types = ("cuda",)
    description = "CUDA kernels (kernels_cuda)"

    def available(self):
        return unavailable("the CUDA kernels are not built yet")
