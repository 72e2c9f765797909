"""The AscendC backend for Atlas A2: see backend.py (the backend), tiling.py (the kernels' tiling,
mirrored from op_host), kernels.py (kernel providers: NPU custom ops, or the CPU model of the AscendC
API), algorithm.py (launches and matmuls), device.py (the NPU environment)."""
from .backend import AscendCBackend

__all__ = ["AscendCBackend"]
