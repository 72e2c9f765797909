// The Atlas A2 (Ascend910B2) figures the model's time ESTIMATE uses, each with its source. Public
// figures where they exist; where none does, the entry says so and the value chosen. This list is
// the only place the figures live: the per-core timeline (pipes.h) reads them here, Python reads
// them through the C ABI (mxdcn_sim_cost_*), and kernels_ascend/README.md prints the same table
// (a test compares them). Doc paths are in the public mirror-cann/asc-devkit repository.
#ifndef MXDCN_SIM_COSTS_H
#define MXDCN_SIM_COSTS_H

// F(name, value, unit, source)
#define MXDCN_SIM_COSTS(F)                                                                                        \
  F(clock_hz, 1.8e9, "Hz",                                                                                        \
    "no official public figure: third-party Atlas A2 cost models use 1.8 GHz for Ascend910B2/B3 (public "       \
    "Ascend910B1 platform ini quotes give 1.85 GHz); the lower value is used")                                    \
  F(vector_cores, 48, "cores",                                                                                    \
    "Ascend910B2 platform_config ini, vector_core_cnt=48 (quoted in CANN's torch_npu core-limit docs)")           \
  F(cube_cores, 24, "cores",                                                                                      \
    "Ascend910B2 platform_config ini, cube_core_cnt=24 (same source)")                                            \
  F(hbm_bytes_per_s, 1.6e12, "B/s",                                                                               \
    "docs/zh/guide/算子实践参考/SIMD算子性能优化/内存访问/L2-Cache切分.md: GM bandwidth about 1.6 TB/s (the "    \
    "192 MB L2 is not modelled: every GM byte is charged at HBM bandwidth)")                                      \
  F(dma_core_bytes_per_cycle, 32, "B/cycle",                                                                      \
    "no official public figure: ddr_rate=32 of [AICoreMemoryRates] in public quotes of the Ascend910B1 platform " \
    "ini; a core's MTE2/MTE3 rate is min(this, HBM bandwidth / active cores)")                                     \
  F(dma_fixed_cycles, 128, "cycles",                                                                              \
    "the dT of the documented copy cost cycles = bytes / bandwidth + dT (docs/zh/api/附录/Cube指令理论性能汇总.md)," \
    " no public value for GM<->UB: chosen so a 16 KB copy reaches 80% of the rate, in line with "                 \
    "docs/zh/guide/算子实践参考/SIMD算子性能优化/内存访问/尽量一次搬运较大的数据块.md (16 KB+ copies use the "     \
    "bandwidth best)")                                                                                            \
  F(dma_unaligned_efficiency, 0.7, "x rate",                                                                      \
    "copies whose GM address is not 512-byte aligned reach 70% of the aligned rate on Atlas A2 (worst case, "    \
    "docs/zh/guide/算子实践参考/SIMD算子性能优化/内存访问/GM地址尽量512B对齐.md)")                                \
  F(atomic_cost_factor, 2, "x bytes",                                                                             \
    "no public figure: an atomic add reads and writes GM, so its bytes count twice (time and HBM traffic)")      \
  F(vec_cycles_per_repeat, 1, "cycles",                                                                           \
    "one 256-byte repeat per cycle: 64 fp32 lanes for Add, Sub, Mul, Adds, Muls, Axpy, Duplicate, Compares, "    \
    "Select, Cast, CreateVecIndex and ReduceDataBlock, 128 uint16 lanes for And, 8 Brcb sources filling 8 blocks "\
    "(docs/zh/api/附录/Vector指令理论性能汇总.md, tables 6, 7, 8, 9, 10, 11, 13)")                              \
  F(vec_gathermask_cycles_per_repeat, 2, "cycles",                                                                \
    "GatherMask fp32: 32 lanes per cycle, two cycles per 256-byte repeat (docs/zh/api/附录/Vector指令理论性能汇总.md, "\
    "table 9)")                                                                                                   \
  F(vec_reduce_cycles_per_repeat, 7, "cycles",                                                                    \
    "ReduceRepeat fp32 64/7 elements/cycle (same doc, table 11); ReduceSum (no figure: software-emulated) = one " \
    "ReduceRepeat pass over the repeats + one over the partial sums (ReduceSum.md, Atlas A2: method 2)")          \
  F(vec_instr_cycles, 8, "cycles",                                                                                \
    "no public figure: fixed start-up of a vector instruction (the order of the 7-cycle ReduceRepeat repeat)")   \
  F(scalar_issue_cycles, 2, "cycles",                                                                             \
    "no public figure: scalar cycles to issue one API instruction (scalar instructions take 1 cycle each, "      \
    "Vector指令理论性能汇总.md table 17; the kernel's own scalar arithmetic between API calls is not counted)")   \
  F(scalar_access_cycles, 4, "cycles",                                                                            \
    "no public figure: one GetValue / SetValue of UB or GM by the scalar unit")                                   \
  F(sync_cycles, 16, "cycles",                                                                                    \
    "no public figure: latency of a SetFlag -> WaitFlag hand-off, added to the wait")                             \
  F(launch_us, 5, "us",                                                                                           \
    "no public figure: device-side cost of one kernel / operator launch (sampling kernels, matmuls, copies)")    \
  F(cube_fp32_macs_per_cycle, 1024, "MAC/cycle/core",                                                             \
    "Mmad float x float on NPU arch 2201: cube m, n, k = 16, 16, 4 (docs/zh/api/附录/Cube指令理论性能汇总.md, "   \
    "table 1); HF32 off, torch_npu.npu.matmul.allow_hf32 defaults to False (hiascend torch_npu API docs)")      \
  F(cube_half_macs_per_cycle, 4096, "MAC/cycle/core",                                                             \
    "Mmad half x half and bfloat16_t x bfloat16_t on NPU arch 2201: cube m, n, k = 16, 16, 16 "                   \
    "(docs/zh/api/附录/Cube指令理论性能汇总.md, table 1); float32 accumulation in L0C")

namespace AscendC {
namespace sim {
namespace cost {

#define MXDCN_SIM_COST_CONST(name, value, unit, source) constexpr double name = value;
MXDCN_SIM_COSTS(MXDCN_SIM_COST_CONST)
#undef MXDCN_SIM_COST_CONST

struct Figure {
  const char* name;
  double value;
  const char* unit;
  const char* source;
};
const Figure* Figures();
int FigureCount();

}  // namespace cost
}  // namespace sim
}  // namespace AscendC

#endif  // MXDCN_SIM_COSTS_H
