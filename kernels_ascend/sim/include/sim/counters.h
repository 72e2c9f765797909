// What one block (one vector core) did, counted as the kernel runs: the work the time estimate is
// made of. Plain additions in the calls that do the work, so counting costs next to nothing.
#ifndef MXDCN_SIM_COUNTERS_H
#define MXDCN_SIM_COUNTERS_H

// F(name): all doubles (exact up to 2^53), in this order in the C ABI (mxdcn_sim_counter_names).
#define MXDCN_SIM_COUNTERS(F)                                                                      \
  F(gm_read_bytes)        /* MTE2 GM -> UB, whole 32-byte blocks as the hardware moves them */   \
  F(gm_write_bytes)       /* MTE3 UB -> GM, plain writes, whole 32-byte blocks */                \
  F(atomic_bytes)         /* MTE3 UB -> GM with SetAtomicAdd, whole 32-byte blocks */            \
  F(mte2_copies)          /* DataCopy / DataCopyPad instructions on MTE2 */                      \
  F(mte3_copies)          /* ... on MTE3 */                                                      \
  F(vec_instructions)     /* vector instructions issued */                                       \
  F(vec_repeats)          /* their repeats (256 bytes each) */                                   \
  F(vec_elements)         /* elements they computed (mask x repeats): the repeats' fill */       \
  F(scalar_reads)         /* GetValue of UB or GM */                                             \
  F(scalar_writes)        /* SetValue of UB or GM */                                             \
  F(set_flags)            /* SetFlag, explicit or by a queue */                                  \
  F(wait_flags)           /* WaitFlag, explicit or by a queue */                                 \
  F(scalar_vector_waits)  /* WaitFlag of V_S or S_V: scalar <-> vector hand-offs */              \
  F(pipe_barriers)        /* PipeBarrier, any pipe */                                            \
  F(busy_s)               /* cycles each pipe was busy */                                        \
  F(busy_v)                                                                                      \
  F(busy_mte2)                                                                                   \
  F(busy_mte3)                                                                                   \
  F(cycles)               /* when the block finished on its core (the timeline's end) */

namespace AscendC {
namespace sim {

struct Counters {
#define MXDCN_SIM_COUNTER_FIELD(name) double name = 0;
  MXDCN_SIM_COUNTERS(MXDCN_SIM_COUNTER_FIELD)
#undef MXDCN_SIM_COUNTER_FIELD
  double waits[static_cast<int>(HardEvent::MAX)] = {};   // WaitFlag per event kind

  // Names of all values, comma-separated, in Flatten's order ("waits_MTE2_V", ... last).
  static const char* Names();
  static int Count();
  void Flatten(double* out) const;
};

// What every block of the last launch did, indexed by block index.
const std::vector<Counters>& LastCounters();

}  // namespace sim
}  // namespace AscendC

#endif  // MXDCN_SIM_COUNTERS_H
