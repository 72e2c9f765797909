// Pipe ordering and the per-core timeline of the AscendC CPU model.
//
// Ordering. The scalar unit issues every instruction to its pipe (S, V, MTE2, MTE3), and the pipes
// run asynchronously: data one pipe wrote may be read (or overwritten) by another only after a
// synchronisation that orders the two (docs/zh/api/SIMD-API/基础API/同步控制/核内同步/
// 核内同步能力概述.md). The model numbers each pipe's instructions and keeps, per pipe Y and pipe X,
// the last instruction of X known to be complete before Y's next one. SetFlag<X_Y>(id) snapshots
// what X knows (X's own count included), WaitFlag<X_Y>(id) hands the snapshot to Y, so orderings
// chain (X -> Y -> Z orders X before Z); PipeBarrier<X> completes X's own instructions, PIPE_ALL
// everything. Every 32-byte UB block remembers the pipe and instruction that last wrote it and,
// per pipe, the last instruction that read it; every GM buffer the same for the whole buffer. An
// access conflicting with an unordered earlier one from another pipe is a hazard (ModelError
// naming the buffer, both pipes and the missing event). Same-pipe rules: V after V is ordered by
// the compiler (cce-auto-sync inserts PIPE_V barriers, 核内同步/关键特性说明.md), S is in order
// (hardware), but two MTE2 copies writing the same UB bytes, or two MTE3 copies the same GM bytes,
// need PipeBarrier<PIPE_MTE2/MTE3> in between (PipeBarrier(ISASI).md, constraints). A scalar read
// counts like any other: a later write by another pipe needs S_X first (the model does not assume
// a scalar load has returned before the next instruction issues). The model demands explicitly
// what cce-auto-sync would insert between S and the other pipes, so every such wait is visible in
// the kernel source and counted.
//
// Timeline. Each instruction costs the scalar unit an issue slot, then occupies its pipe from when
// both the pipe is free and the instruction was issued; WaitFlag holds its pipe (or stalls the
// scalar unit, for X_S) until the SetFlag's pipe has finished everything before it. Costs: costs.h.
#ifndef MXDCN_SIM_PIPES_H
#define MXDCN_SIM_PIPES_H

namespace AscendC {
namespace sim {

constexpr int kEventKinds = static_cast<int>(HardEvent::MAX);
constexpr int kEventIds = 8;   // ids 0..7 on Atlas A2 (SetFlag-WaitFlag.md; QUE_MAX_EVENT in impl/basic_api/kernel_macros.h)

Pipe EventSource(HardEvent e);
Pipe EventTarget(HardEvent e);
const char* EventName(HardEvent e);

class PipeModel {
 public:
  PipeModel();
  // A block starts on a core; `activeCores` blocks of the launch share the HBM bandwidth.
  void Reset(uint32_t activeCores);

  // An instruction of pipe `p` (for S: GetValue / SetValue) is issued: returns its number on `p`.
  uint32_t Begin(Pipe p);
  // ... and occupies `p` for `cycles` (nothing for S, whose cost Begin took).
  void End(Pipe p, double cycles);

  // Ordering checks and records for the current instruction of `p`.
  void Ub(Pipe p, bool write, uint32_t lo, uint32_t hi, const char* what);   // UB bytes [lo, hi)
  void Gm(Pipe p, bool write, GmBuffer& b, const char* what);
  // The instruction of `p` that last wrote a word of an output (MTE3 rewrite check), packed.
  uint32_t Seq(Pipe p) const { return seq_[static_cast<int>(p)]; }
  bool Ordered(Pipe later, Pipe earlier, uint32_t seq) const {
    return known_[static_cast<int>(later)][static_cast<int>(earlier)] >= seq;
  }

  // The scalar unit reads a value the vector pipe produces through a register (GatherMask's count):
  // it waits until the vector pipe has finished everything issued so far (a V -> S hand-off).
  void ScalarWaitsForVector();

  void SetFlag(HardEvent e, int32_t id);
  void WaitFlag(HardEvent e, int32_t id);
  void Barrier(pipe_t p);
  // SetFlags never waited for, as "SetFlag<HardEvent::X>(id)" phrases ("" when none).
  std::string PendingEvents() const;

  // Names a UB range in messages (TPipe::InitBuffer calls it).
  void Label(uint32_t lo, uint32_t hi, const std::string& label);
  std::string UbName(uint32_t lo, uint32_t hi) const;

  double DmaCycles(double bytes, bool aligned512) const;
  double EndTime() const;

  Counters counters;

 private:
  struct UbState {
    uint32_t wSeq;
    uint8_t wPipe;
    uint32_t rSeq[kPipes];
  };
  struct Event {
    bool pending;
    uint32_t seqs[kPipes];
    double time;
  };
  struct Region {
    uint32_t lo, hi;
    std::string label;
  };
  [[noreturn]] void Hazard(const char* what, Pipe p, bool write, Pipe other, bool otherWrote, uint32_t otherSeq,
                           const std::string& where) const;
  double Issue();   // the scalar unit issues one instruction: returns its issue time

  uint32_t seq_[kPipes];
  uint32_t known_[kPipes][kPipes];
  double t_[kPipes];
  double issue_ = 0;
  double dmaRate_ = 1;
  std::vector<UbState> ub_;
  Event events_[kEventKinds][kEventIds];
  std::vector<Region> regions_;
};

PipeModel& pipes();

// GM accesses of pipe `p`'s current instruction: bounds against the launch's buffers, write rules
// (inputs never, accumulated outputs only with atomic add, plain outputs once per element and
// block), ordering. Return the buffer.
GmBuffer& GmRead(Pipe p, const void* ptr, uint64_t bytes, const char* what);
GmBuffer& GmWrite(Pipe p, const void* ptr, uint64_t bytes, const char* what);

}  // namespace sim
}  // namespace AscendC

#endif  // MXDCN_SIM_PIPES_H
