// Stand-in for the per-op header the CANN build generates (and force-includes into each kernel):
// GET_TILING_DATA(var, tiling) reads the struct the kernel registered with REGISTER_TILING_DEFAULT.
// ci/ascendc_check.sh passes that struct's name as MXDCN_TILING_TYPE.
#pragma once
#define GET_TILING_DATA(var, tiling) \
  const MXDCN_TILING_TYPE var = *reinterpret_cast<__gm__ const MXDCN_TILING_TYPE*>(tiling)
