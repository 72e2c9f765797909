"""The AscendC backend for Atlas A2: see backend.py (the backend), tiling.py (the kernels' tiling,
mirrored from op_host), kernels.py (kernel providers: NPU custom ops, or the CPU model of the AscendC
API), sim_library.py (that model's library, built on demand), algorithm.py (launches and matmuls),
device.py (the NPU environment), estimate.py (the Atlas A2 time estimate from the model)."""
from .backend import AscendCBackend

__all__ = ["AscendCBackend"]
