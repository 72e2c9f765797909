// A CPU model of the part of the AscendC API that the mx_dcn kernels use -- a TEST HARNESS and a
// counting instrument, not a device and not a cycle-accurate emulator.
//
// The kernel sources in ../../op_kernel compile unchanged against this header (instead of CANN's
// kernel_operator.h) and run on the CPU, one block index after another (sim::RunKernel). Every call
// checks the rule the hardware imposes and throws AscendC::sim::ModelError with a sentence naming the
// rule, the buffer and, for a missing synchronisation, both pipes and the event that would order them.
// Each rule cites the asc-devkit header or document it follows (paths as in the public
// mirror-cann/asc-devkit repository). The parts, each a header a reader can hold in mind:
//   sim/model_core.h   errors, pipes, GM buffers of a launch, block state, the block driver
//   sim/half_types.h   half and bfloat16_t: 16-bit storage, converted from float as CAST_RINT
//   sim/costs.h        the Atlas A2 figures the time estimate uses, each with its source
//   sim/counters.h     what a block did: GM bytes, vector work, scalar work, synchronisations
//   sim/pipes.h        pipe ordering (who wrote / read every UB block and GM buffer last, which
//                      synchronisations order which pipes) and the per-core timeline
//   sim/tensors.h      GlobalTensor, LocalTensor, TQue, TBuf, TPipe (event ids, queue hand-offs)
//   sim/sync.h         SetFlag / WaitFlag / PipeBarrier, atomic add
//   sim/data_copy.h    DataCopy / DataCopyPad between GM and UB
//   sim/vector_ops.h   the vector instructions (level-0 form: mask, repeats, strides)
//   sim/vector_count.h the level-2 (count) form: Duplicate, Add, Sub, Mul, And, Adds, Muls
//   sim/vector_select.h Compares and Select (bit masks)
//   sim/vector_convert.h Cast (rounding), CreateVecIndex, Brcb, ReduceDataBlock
// Not modelled: bank conflicts, the cube unit's instructions, fp16 arithmetic (only storage and the
// float -> half / bfloat16 Cast), the exact summation
// order of ReduceSum, instruction-queue depths (the scalar unit never stalls on a full queue).
#ifndef MXDCN_SIM_KERNEL_OPERATOR_H
#define MXDCN_SIM_KERNEL_OPERATOR_H

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#define __global__
#define __aicore__
#define __gm__
#define GM_ADDR uint8_t*
#define KERNEL_TASK_TYPE_DEFAULT(type)

// Standard-C++ tiling structs: the kernel names its struct, then copies it out of the tiling
// argument (the host tiling wrote it with TilingContext::GetTilingData<T>()).
#define REGISTER_TILING_DEFAULT(type) using SimTilingType_ = type
#define GET_TILING_DATA(var, tiling) \
  SimTilingType_ var;                \
  ::AscendC::sim::LoadTiling(&var, sizeof(var), tiling)

// The hardware events between the pipes of a vector core (AIV), as (name, source pipe, destination
// pipe): the legal pairs of table 3 in docs/zh/api/SIMD-API/基础API/同步控制/核内同步/核内同步能力概述.md
// (impl/basic_api/kernel_event.h declares them as HardEvent).
#define MXDCN_SIM_EVENTS(F)                                                                       \
  F(MTE2_V, MTE2, V) F(V_MTE2, V, MTE2) F(MTE3_V, MTE3, V) F(V_MTE3, V, MTE3)                     \
  F(MTE2_S, MTE2, S) F(S_MTE2, S, MTE2) F(MTE3_S, MTE3, S) F(S_MTE3, S, MTE3) F(V_S, V, S)        \
  F(S_V, S, V) F(MTE2_MTE3, MTE2, MTE3) F(MTE3_MTE2, MTE3, MTE2)

namespace AscendC {

enum class TPosition : uint8_t { GM, VECIN, VECOUT, VECCALC, A1, A2, B1, B2, CO1, CO2 };
#define MXDCN_SIM_EVENT_ENUM(name, src, dst) name,
enum class HardEvent : uint8_t { MXDCN_SIM_EVENTS(MXDCN_SIM_EVENT_ENUM) MAX };
#undef MXDCN_SIM_EVENT_ENUM
enum pipe_t : uint8_t { PIPE_S, PIPE_V, PIPE_MTE2, PIPE_MTE3, PIPE_ALL };
using event_t = int32_t;
using TEventID = int8_t;

}  // namespace AscendC

#include "sim/model_core.h"
#include "sim/half_types.h"
#include "sim/costs.h"
#include "sim/counters.h"
#include "sim/pipes.h"
#include "sim/tensors.h"
#include "sim/sync.h"
#include "sim/data_copy.h"
#include "sim/vector_ops.h"
#include "sim/vector_count.h"
#include "sim/vector_select.h"
#include "sim/vector_convert.h"

#endif  // MXDCN_SIM_KERNEL_OPERATOR_H
