// Stand-in for simt_stub.h of CANN's closed CPU-debug library. Included by asc-devkit's
// include/simt_api/device_types.h; the SIMT API is not used by the Atlas A2 kernels, so it is empty.
#pragma once
