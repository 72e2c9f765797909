// Declaration-only stand-in for stub_def.h of CANN's closed CPU-debug library, written for the
// real-header type-check (ci/ascendc_check.sh). The public AscendC headers (asc-devkit) include it
// under ASCENDC_CPU_DEBUG=1 for the compiler keywords, the raw enums and the core globals.
// Only what the headers reach when kernels_ascend/op_kernel is compiled for an Atlas A2 vector core
// (__NPU_ARCH__ 2201); names come from the headers' uses (e.g. impl/basic_api/kernel_event.h,
// impl/basic_api/kernel_log.h, include/basic_api/reg_compute/kernel_reg_compute_common_intf.h).
// Nothing here is linked or run.
#pragma once
#include <cassert>
#include <cstdint>
#include <iostream>
#include <vector>

#include "kernel_bf16.h"
#include "kernel_fp16.h"

// bisheng keywords and address spaces: nothing on a host compiler
#define __aicore__
#define __global__
#define __host__
#define __gm__
#define __ubuf__
#define __cbuf__
#define __ca__
#define __cb__
#define __cc__
#define __fbuf__
#define __ssbuf__
#define __simd_callee__
#define __sync_alias__
#define __check_sync_alias__
#define __disable_kernel_type_autoinfer__
#define __BLOCK_LOCAL__
#define __WORKGROUP_LOCAL__
#define __in_pipe__(...)
#define __out_pipe__(...)
#define __inout_pipe__(...)
// impl/basic_api/kernel_macros.h defines these only for the device compiler
#define ASCENDC_HOST
#define ASCENDC_AICORE
#define ASCENDC_HOST_AICORE

// raw enums of the intrinsics (the values only need to be distinct)
enum pipe_t { PIPE_S, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_ALL, PIPE_V2, PIPE_FIX, PIPE_NUM };
enum event_t { EVENT_ID0, EVENT_ID1, EVENT_ID2, EVENT_ID3, EVENT_ID4, EVENT_ID5, EVENT_ID6, EVENT_ID7 };
enum mem_t { MEM_T_STUB };
enum mem_dsb_t { MEM_DSB_T_STUB };
enum pad_t { PAD_NONE };
enum addr_cal_mode_t { ADDR_CAL_MODE_STUB };
enum atomic_type_t { ATOMIC_TYPE_STUB };
enum atomic_op_t { ATOMIC_OP_STUB };
enum inc_mode_t { inc, dec };
enum vld_part_t { L128, H128 };
enum ub_addr8_t { VA0, VA1, VA2, VA3, VA4, VA5, VA6, VA7 };
enum Order_t { VALUE_INDEX, INDEX_VALUE, ONLY_VALUE, ONLY_INDEX };
enum dcci_dst_t { CACHELINE_ALL, CACHELINE_UB, CACHELINE_OUT, CACHELINE_ATOMIC };
enum cache_line_t { SINGLE_CACHE_LINE, ENTIRE_DATA_CACHE };
enum class QuantMode_t {
  NoQuant, F322F16, F322BF16, DEQF16, VDEQF16, DEQS16, VDEQS16, REQ4, VREQ4, REQ8, VREQ8, QF162B8_PRE,
  VQF162B8_PRE, QF162S16_PRE, VQF162S16_PRE, QF162S4_PRE, VQF162S4_PRE, QF322B8_PRE, VQF322B8_PRE,
  QF322BF16_PRE, VQF322BF16_PRE, QF322F16_PRE, VQF322F16_PRE, QF322F32_PRE, VQF322F32_PRE, QF322FP8_PRE,
  VQF322FP8_PRE, QF322HIF8_PRE, VQF322HIF8_PRE, QF322HIF8_PRE_HYBRID, VQF322HIF8_PRE_HYBRID, QS322BF16_PRE,
  VQS322BF16_PRE
};

// register types of the reg-compute API (declared for every architecture, used on others)
struct vector_bool {};
struct vector_align {};
struct vector_address {};
struct vector_u32 {};

// narrow float types named by impl/utils/sys_macros.h
struct fp4x2_e1m2_t { uint8_t v; };
struct fp4x2_e2m1_t { uint8_t v; };
struct fp8_e4m3fn_t { uint8_t v; };
struct fp8_e5m2_t { uint8_t v; };
struct fp8_e8m0_t { uint8_t v; };

// core globals of the CPU-debug runtime
extern int64_t block_idx;
extern int64_t block_num;
extern int64_t sub_block_idx;
extern uint64_t g_fixpipeNdNzParam;
namespace AscendC {
enum : int32_t { AIC_TYPE = 1, AIV_TYPE = 2, MIX_TYPE = 3 };
extern int32_t g_coreType;
extern int32_t g_taskRation;
extern bool g_isVdeq;
}  // namespace AscendC
