// Declaration-only stand-in for stub_fun.h of CANN's closed CPU-debug library: the raw intrinsics the
// public AscendC headers call under ASCENDC_CPU_DEBUG=1 (their device-side bodies), for the
// real-header type-check (ci/ascendc_check.sh). Each accepts any arguments: the check is about the
// kernels' use of the public API (overloads, template arguments, parameter structs, element types),
// which the real headers declare; what the headers pass down to an intrinsic is theirs, not ours.
// The list is what the headers reach for an Atlas A2 vector core; a kernel that uses a new API may
// reach a new intrinsic (the check then says which name to add here).
#pragma once
#include <cstdint>

#include "kernel_fp16.h"

#define MXDCN_VOID(name) template <typename... A> void name(A&&...);
#define MXDCN_INT(name) template <typename... A> int64_t name(A&&...);
// the five rounding variants of a conversion: a(way from zero), c(eil), f(loor), r(int), z(ero)
#define MXDCN_ROUNDED(name) MXDCN_VOID(name##a) MXDCN_VOID(name##c) MXDCN_VOID(name##f) MXDCN_VOID(name##r) \
  MXDCN_VOID(name##z)

// synchronisation and caches
MXDCN_VOID(set_flag) MXDCN_VOID(wait_flag) MXDCN_VOID(pipe_barrier) MXDCN_VOID(hset_flag) MXDCN_VOID(hwait_flag)
MXDCN_VOID(wait_flag_dev) MXDCN_VOID(ffts_cross_core_sync) MXDCN_VOID(dsb) MXDCN_VOID(dcci) MXDCN_VOID(dc_preload)
MXDCN_VOID(preload) MXDCN_VOID(trap) MXDCN_VOID(__ib_set_stub) MXDCN_VOID(__ib_wait_stub)
MXDCN_VOID(__sync_all_stub)

// data movement
MXDCN_VOID(copy_gm_to_ubuf) MXDCN_VOID(copy_gm_to_ubuf_align_b32) MXDCN_VOID(copy_ubuf_to_gm)
MXDCN_VOID(copy_ubuf_to_gm_align_b32) MXDCN_VOID(copy_ubuf_to_ubuf) MXDCN_VOID(copy_gm_to_cbuf)
MXDCN_VOID(copy_gm_to_cbuf_multi_nd2nz_b8) MXDCN_VOID(copy_gm_to_cbuf_multi_nd2nz_b16)
MXDCN_VOID(copy_gm_to_cbuf_multi_nd2nz_b32s) MXDCN_VOID(copy_cbuf_to_gm) MXDCN_VOID(copy_cbuf_to_bt)
MXDCN_VOID(copy_cbuf_to_fbuf) MXDCN_VOID(create_cbuf_matrix) MXDCN_VOID(img2colv2_cbuf_to_ca)
MXDCN_VOID(img2colv2_cbuf_to_ca_s4) MXDCN_VOID(img2colv2_cbuf_to_cb) MXDCN_VOID(load_cbuf_to_ca_s4)
MXDCN_VOID(load_cbuf_to_cb_s4) MXDCN_VOID(load_cbuf_to_cb_sp) MXDCN_VOID(load_cbuf_to_cb_transpose_s4)
MXDCN_VOID(mad_sp) MXDCN_VOID(scatter_vnchwconv_b8) MXDCN_VOID(scatter_vnchwconv_b16)
MXDCN_VOID(scatter_vnchwconv_b32) MXDCN_VOID(st_dev) MXDCN_INT(ld_dev)

// vector instructions
MXDCN_VOID(vabs) MXDCN_VOID(vadd) MXDCN_VOID(vadds) MXDCN_VOID(vand) MXDCN_VOID(vaxpy) MXDCN_VOID(vbrcb)
MXDCN_VOID(vcadd) MXDCN_VOID(vcgadd) MXDCN_VOID(vcgmax) MXDCN_VOID(vcmax) MXDCN_VOID(vcmin) MXDCN_VOID(vcopy)
MXDCN_VOID(vdiv) MXDCN_VOID(vector_dup) MXDCN_VOID(vexp) MXDCN_VOID(vgather) MXDCN_VOID(vld_va_reg) MXDCN_VOID(vln)
MXDCN_VOID(vmax) MXDCN_VOID(vmaxs) MXDCN_VOID(vmin) MXDCN_VOID(vmins) MXDCN_VOID(vmul) MXDCN_VOID(vmuls)
MXDCN_VOID(vnot) MXDCN_VOID(vor) MXDCN_VOID(vrec) MXDCN_VOID(vreducev2) MXDCN_VOID(vsel) MXDCN_VOID(vshr)
MXDCN_VOID(vsqrt) MXDCN_VOID(vsub) MXDCN_VOID(vtranspose)
MXDCN_VOID(vcmpv_eq) MXDCN_VOID(vcmpv_ne) MXDCN_VOID(vcmpv_lt) MXDCN_VOID(vcmpv_le) MXDCN_VOID(vcmpv_gt)
MXDCN_VOID(vcmpv_ge) MXDCN_VOID(vcmpvs_eq) MXDCN_VOID(vcmpvs_ne) MXDCN_VOID(vcmpvs_lt) MXDCN_VOID(vcmpvs_le)
MXDCN_VOID(vcmpvs_gt) MXDCN_VOID(vcmpvs_ge)

// conversions
MXDCN_VOID(vconv_bf162f32) MXDCN_VOID(vconv_deq) MXDCN_VOID(vconv_f162f32) MXDCN_VOID(vconv_f162s4)
MXDCN_VOID(vconv_f162s8) MXDCN_VOID(vconv_f162u8) MXDCN_VOID(vconv_f322f16) MXDCN_VOID(vconv_f322f16o)
MXDCN_VOID(vconv_s162f16) MXDCN_VOID(vconv_s162f32) MXDCN_VOID(vconv_s322f32) MXDCN_VOID(vconv_s322s16)
MXDCN_VOID(vconv_s322s64) MXDCN_VOID(vconv_s42f16) MXDCN_VOID(vconv_s642s32) MXDCN_VOID(vconv_s82f16)
MXDCN_VOID(vconv_u82f16) MXDCN_VOID(vmulconv_f162s8) MXDCN_VOID(vmulconv_f162u8)
MXDCN_ROUNDED(vconv_bf162s32) MXDCN_ROUNDED(vconv_f162s16) MXDCN_ROUNDED(vconv_f162s32) MXDCN_ROUNDED(vconv_f162s4)
MXDCN_ROUNDED(vconv_f162s8) MXDCN_ROUNDED(vconv_f162u8) MXDCN_ROUNDED(vconv_f322bf16) MXDCN_ROUNDED(vconv_f322f16)
MXDCN_ROUNDED(vconv_f322f32) MXDCN_ROUNDED(vconv_f322s16) MXDCN_ROUNDED(vconv_f322s32) MXDCN_ROUNDED(vconv_f322s64)
MXDCN_ROUNDED(vconv_s162f16) MXDCN_ROUNDED(vconv_s322f32) MXDCN_ROUNDED(vconv_s642f32)
template <typename... A> half conv_f322f16o(A&&...);
template <typename... A> int32_t conv_f322s32a(A&&...);
template <typename... A> int32_t conv_f322s32c(A&&...);
template <typename... A> int32_t conv_f322s32f(A&&...);
template <typename... A> int32_t conv_f322s32r(A&&...);

// control registers
MXDCN_VOID(set_vector_mask) MXDCN_VOID(set_mask_norm) MXDCN_VOID(set_mask_count) MXDCN_VOID(set_ctrl)
MXDCN_VOID(set_cmpmask) MXDCN_VOID(set_deqscale) MXDCN_VOID(set_fpc) MXDCN_VOID(set_padding)
MXDCN_VOID(set_mov_pad_val) MXDCN_VOID(set_nd_para) MXDCN_VOID(set_quant_pre) MXDCN_VOID(set_l1_3d_size)
MXDCN_VOID(set_l3d_rpt) MXDCN_VOID(set_fmatrix) MXDCN_VOID(set_fmatrix_b) MXDCN_VOID(set_ffts_base_addr)
MXDCN_VOID(set_va_reg_sb) MXDCN_VOID(set_st_atomic_cfg) MXDCN_VOID(set_data_exp_0) MXDCN_VOID(set_data_exp_1)
MXDCN_VOID(set_data_exp_2) MXDCN_VOID(set_data_exp_3)
MXDCN_VOID(set_atomic_none) MXDCN_VOID(set_atomic_add) MXDCN_VOID(set_atomic_max) MXDCN_VOID(set_atomic_min)
MXDCN_VOID(set_atomic_f32) MXDCN_VOID(set_atomic_f16) MXDCN_VOID(set_atomic_bf16) MXDCN_VOID(set_atomic_s32)
MXDCN_VOID(set_atomic_s16) MXDCN_VOID(set_atomic_s8)
MXDCN_VOID(set_aipp_spr_0) MXDCN_VOID(set_aipp_spr_1) MXDCN_VOID(set_aipp_spr_2) MXDCN_VOID(set_aipp_spr_3)
MXDCN_VOID(set_aipp_spr_4) MXDCN_VOID(set_aipp_spr_5) MXDCN_VOID(set_aipp_spr_6) MXDCN_VOID(set_aipp_spr_7)
MXDCN_VOID(set_aipp_spr_8) MXDCN_VOID(set_aipp_spr_9) MXDCN_VOID(set_aipp_spr_18) MXDCN_VOID(set_aipp_spr_19)
MXDCN_VOID(set_aipp_spr_20) MXDCN_VOID(set_aipp_spr_21)
MXDCN_INT(get_ctrl) MXDCN_INT(get_block_idx) MXDCN_INT(get_block_num) MXDCN_INT(get_acc_val) MXDCN_INT(get_arch_ver)
MXDCN_INT(get_icache_prl_st) MXDCN_INT(get_max_min_cnt) MXDCN_INT(get_pc) MXDCN_INT(get_rsvd_cnt)
MXDCN_INT(get_st_atomic_cfg) MXDCN_INT(get_vms4_sr)

// scalar bit operations
MXDCN_INT(sbitset0) MXDCN_INT(sbitset1) MXDCN_INT(sff0) MXDCN_INT(sff1) MXDCN_INT(sflbits) MXDCN_INT(bcnt0)
MXDCN_INT(bcnt1) MXDCN_INT(clz)

// CPU-debug bookkeeping of queues and buffers
MXDCN_VOID(AscendCBufInit) MXDCN_VOID(AscendCBufAlloc) MXDCN_VOID(AscendCBufFree) MXDCN_VOID(AscendCBufEnque)
MXDCN_VOID(AscendCBufDeque) MXDCN_VOID(AscendCQueCreate) MXDCN_VOID(AscendCTBufPoolInit)
MXDCN_VOID(AscendCTBufPoolResetCheck) MXDCN_VOID(AscendCUpdateTbufPoolStatus) MXDCN_VOID(AscendCRecordPoolHierarchy)
MXDCN_INT(AscendCBufGet) MXDCN_INT(AscendCBufAbsAddr)

#undef MXDCN_ROUNDED
#undef MXDCN_INT
#undef MXDCN_VOID
