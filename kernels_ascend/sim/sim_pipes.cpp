// Pipe ordering, hazards and the per-core timeline of the AscendC CPU model (see include/sim/pipes.h).
#include <algorithm>

#include "kernel_operator.h"

namespace AscendC {
namespace sim {

namespace {

struct EventInfo {
  const char* name;
  Pipe src, dst;
};

const EventInfo& Info(HardEvent e) {
#define MXDCN_SIM_EVENT_INFO(name, src, dst) {#name, Pipe::src, Pipe::dst},
  static const EventInfo info[] = {MXDCN_SIM_EVENTS(MXDCN_SIM_EVENT_INFO)};
#undef MXDCN_SIM_EVENT_INFO
  const int k = static_cast<int>(e);
  if (k < 0 || k >= kEventKinds) Fail("unknown HardEvent " + Str(uint64_t(k)));
  return info[k];
}

// The event that orders `earlier` before `later`, as it would be written in the kernel.
std::string MissingSync(Pipe earlier, Pipe later) {
  if (earlier == later) {
    return std::string("PipeBarrier<PIPE_") + PipeName(later) + "> between the two copies (copies with overlapping "
           "destinations must be serialised, PipeBarrier(ISASI).md)";
  }
  for (int k = 0; k < kEventKinds; ++k) {
    const EventInfo& i = Info(static_cast<HardEvent>(k));
    if (i.src == earlier && i.dst == later) {
      std::string s = std::string("SetFlag<HardEvent::") + i.name + "> / WaitFlag<HardEvent::" + i.name + ">";
      const std::string n = i.name;
      if (n == "MTE2_V") s += " (or EnQue/DeQue of a TQue<VECIN>)";
      if (n == "V_MTE2") s += " (or FreeTensor/AllocTensor of a TQue<VECIN>)";
      if (n == "V_MTE3") s += " (or EnQue/DeQue of a TQue<VECOUT>)";
      if (n == "MTE3_V") s += " (or FreeTensor/AllocTensor of a TQue<VECOUT>)";
      return s;
    }
  }
  return "a synchronisation";
}

}  // namespace

Pipe EventSource(HardEvent e) { return Info(e).src; }
Pipe EventTarget(HardEvent e) { return Info(e).dst; }
const char* EventName(HardEvent e) { return Info(e).name; }

PipeModel& pipes() {
  static PipeModel model;
  return model;
}

PipeModel::PipeModel() : ub_(kUbBlocks) { Reset(1); }

void PipeModel::Reset(uint32_t activeCores) {
  std::fill(&seq_[0], &seq_[0] + kPipes, 0u);
  std::fill(&known_[0][0], &known_[0][0] + kPipes * kPipes, 0u);
  std::fill(&t_[0], &t_[0] + kPipes, 0.0);
  issue_ = 0;
  std::fill(ub_.begin(), ub_.end(), UbState{0, 0, {0, 0, 0, 0}});
  for (auto& kind : events_)
    for (Event& e : kind) e.pending = false;
  regions_.clear();
  counters = Counters();
  const double share = cost::hbm_bytes_per_s / cost::clock_hz / double(std::max(1u, activeCores));
  dmaRate_ = std::min(cost::dma_core_bytes_per_cycle, share);
}

double PipeModel::Issue() {
  const double at = t_[0];
  t_[0] += cost::scalar_issue_cycles;
  counters.busy_s += cost::scalar_issue_cycles;
  return at;
}

uint32_t PipeModel::Begin(Pipe p) {
  const int i = static_cast<int>(p);
  ++seq_[i];
  if (p == Pipe::S) {
    issue_ = t_[0];
    t_[0] += cost::scalar_access_cycles;
    counters.busy_s += cost::scalar_access_cycles;
  } else {
    issue_ = Issue();
  }
  return seq_[i];
}

void PipeModel::End(Pipe p, double cycles) {
  if (p == Pipe::S) return;
  const int i = static_cast<int>(p);
  t_[i] = std::max(t_[i], issue_) + cycles;
  (p == Pipe::V ? counters.busy_v : p == Pipe::MTE2 ? counters.busy_mte2 : counters.busy_mte3) += cycles;
}

void PipeModel::Hazard(const char* what, Pipe p, bool write, Pipe other, bool otherWrote, uint32_t otherSeq,
                       const std::string& where) const {
  Fail(std::string(what) + ": pipe " + PipeName(p) + (write ? " writes " : " reads ") + where + ", which pipe " +
       PipeName(other) + (otherWrote ? " wrote" : " read") + " (its instruction #" + Str(otherSeq) +
       ") with nothing ordering the two: missing " + MissingSync(other, p));
}

void PipeModel::Ub(Pipe p, bool write, uint32_t lo, uint32_t hi, const char* what) {
  if (hi <= lo) return;
  const int pi = static_cast<int>(p);
  const uint32_t seq = seq_[pi];
  // What pipe p knows complete, with its own slot at "everything": its own accesses never conflict
  // (but see the MTE copies below). Hot path: branch-free tests, the rule is found on a conflict.
  uint32_t k[kPipes];
  for (int q = 0; q < kPipes; ++q) k[q] = q == pi ? 0xFFFFFFFFu : known_[pi][q];
  const bool dmaWrite = write && (p == Pipe::MTE2 || p == Pipe::MTE3);
  UbState* s = &ub_[lo / kBlock];
  UbState* const end = &ub_[(hi + kBlock - 1) / kBlock];
  for (; s != end; ++s) {
    bool conflict = s->wSeq > k[s->wPipe];
    if (write) {
      conflict |= (s->rSeq[0] > k[0]) | (s->rSeq[1] > k[1]) | (s->rSeq[2] > k[2]) | (s->rSeq[3] > k[3]);
      // Two copies of one MTE pipe into the same bytes (not one copy touching a block twice).
      conflict |= dmaWrite && s->wPipe == pi && s->wSeq != 0 && s->wSeq != seq && known_[pi][pi] < s->wSeq;
    }
    if (__builtin_expect(conflict, 0)) {
      const int w = s->wPipe;
      if (s->wSeq > k[w]) Hazard(what, p, write, static_cast<Pipe>(w), true, s->wSeq, UbName(lo, hi));
      for (int q = 0; q < kPipes; ++q) {
        if (s->rSeq[q] > k[q]) Hazard(what, p, true, static_cast<Pipe>(q), false, s->rSeq[q], UbName(lo, hi));
      }
      Hazard(what, p, true, p, true, s->wSeq, UbName(lo, hi));
    }
    if (write) {
      s->wPipe = static_cast<uint8_t>(pi);
      s->wSeq = seq;
      s->rSeq[0] = s->rSeq[1] = s->rSeq[2] = s->rSeq[3] = 0;
    } else {
      s->rSeq[pi] = seq;
    }
  }
}

void PipeModel::Gm(Pipe p, bool write, GmBuffer& b, const char* what) {
  if (b.mode == GmMode::kInput && !write) return;   // never written (writes fail): nothing to order
  const int pi = static_cast<int>(p);
  for (int q = 0; q < kPipes; ++q) {
    if (q == pi) continue;
    if (b.lastWrite[q] > known_[pi][q]) Hazard(what, p, write, static_cast<Pipe>(q), true, b.lastWrite[q], "GM buffer '" + b.name + "'");
    if (write && b.lastRead[q] > known_[pi][q]) {
      Hazard(what, p, true, static_cast<Pipe>(q), false, b.lastRead[q], "GM buffer '" + b.name + "'");
    }
  }
  (write ? b.lastWrite : b.lastRead)[pi] = seq_[pi];
}

namespace {
std::string Call(const char* fn, HardEvent e, int32_t id) {
  return std::string(fn) + "<HardEvent::" + EventName(e) + ">(" + std::to_string(id) + ")";
}
}  // namespace

void PipeModel::SetFlag(HardEvent e, int32_t id) {
  if (id < 0 || id >= kEventIds) Fail(Call("SetFlag", e, id) + ": event id outside 0..7 (SetFlag-WaitFlag.md: ids 0-7 on Atlas A2)");
  Event& ev = events_[static_cast<int>(e)][id];
  if (ev.pending) {
    Fail(Call("SetFlag", e, id) + " again before its WaitFlag: the first signal would be lost (SetFlag/WaitFlag must "
         "pair, SetFlag-WaitFlag.md)");
  }
  const double at = Issue();
  const int src = static_cast<int>(EventSource(e));
  for (int q = 0; q < kPipes; ++q) ev.seqs[q] = q == src ? seq_[src] : known_[src][q];
  ev.time = src == 0 ? t_[0] : std::max(t_[src], at);
  ev.pending = true;
  counters.set_flags += 1;
}

void PipeModel::WaitFlag(HardEvent e, int32_t id) {
  if (id < 0 || id >= kEventIds) Fail(Call("WaitFlag", e, id) + ": event id outside 0..7 (SetFlag-WaitFlag.md: ids 0-7 on Atlas A2)");
  Event& ev = events_[static_cast<int>(e)][id];
  const int dst = static_cast<int>(EventTarget(e));
  if (!ev.pending) {
    Fail(Call("WaitFlag", e, id) + " without a SetFlag<HardEvent::" + EventName(e) + ">(" + std::to_string(id) +
         ") before it: pipe " + PipeName(static_cast<Pipe>(dst)) + " would wait forever (SetFlag/WaitFlag must pair "
         "with the same event id, SetFlag-WaitFlag.md)");
  }
  const double at = Issue();
  for (int q = 0; q < kPipes; ++q) known_[dst][q] = std::max(known_[dst][q], ev.seqs[q]);
  const double ready = ev.time + cost::sync_cycles;
  t_[dst] = dst == 0 ? std::max(t_[0], ready) : std::max(t_[dst], std::max(at, ready));
  ev.pending = false;
  counters.wait_flags += 1;
  counters.waits[static_cast<int>(e)] += 1;
  if (e == HardEvent::V_S || e == HardEvent::S_V) counters.scalar_vector_waits += 1;
}

void PipeModel::ScalarWaitsForVector() {
  const int v = static_cast<int>(Pipe::V), sc = static_cast<int>(Pipe::S);
  for (int q = 0; q < kPipes; ++q) known_[sc][q] = std::max(known_[sc][q], q == v ? seq_[v] : known_[v][q]);
  t_[sc] = std::max(t_[sc], t_[v] + cost::sync_cycles);
  counters.scalar_vector_waits += 1;
}

void PipeModel::Barrier(pipe_t p) {
  if (p == PIPE_S) Fail("PipeBarrier<PIPE_S> is not supported: the scalar pipe is ordered by the hardware (PipeBarrier(ISASI).md)");
  const double at = Issue();
  counters.pipe_barriers += 1;
  if (p == PIPE_ALL) {
    const double all = std::max(at, *std::max_element(t_, t_ + kPipes));
    for (int i = 0; i < kPipes; ++i) {
      t_[i] = all;
      for (int q = 0; q < kPipes; ++q) known_[i][q] = seq_[q];
    }
    return;
  }
  const int i = static_cast<int>(p);   // PIPE_V, PIPE_MTE2, PIPE_MTE3 number the pipes as Pipe does
  known_[i][i] = seq_[i];
  t_[i] = std::max(t_[i], at);
}

std::string PipeModel::PendingEvents() const {
  std::string s;
  for (int k = 0; k < kEventKinds; ++k)
    for (int id = 0; id < kEventIds; ++id)
      if (events_[k][id].pending) {
        s += (s.empty() ? "" : ", ") + std::string("SetFlag<HardEvent::") + EventName(static_cast<HardEvent>(k)) +
             ">(" + std::to_string(id) + ")";
      }
  return s;
}

void PipeModel::Label(uint32_t lo, uint32_t hi, const std::string& label) { regions_.push_back(Region{lo, hi, label}); }

std::string PipeModel::UbName(uint32_t lo, uint32_t hi) const {
  std::string name = "UB";
  for (const Region& r : regions_) {
    if (lo >= r.lo && lo < r.hi) name = r.label;
  }
  return name + " (UB bytes [" + Str(lo) + ", " + Str(hi) + "))";
}

double PipeModel::DmaCycles(double bytes, bool aligned512) const {
  return cost::dma_fixed_cycles + bytes / (dmaRate_ * (aligned512 ? 1.0 : cost::dma_unaligned_efficiency));
}

double PipeModel::EndTime() const { return *std::max_element(t_, t_ + kPipes); }

// --------------------------------------------------------------------------- GM accesses

GmBuffer& GmRead(Pipe p, const void* ptr, uint64_t bytes, const char* what) {
  GmBuffer& b = GmRegistry::instance().Find(ptr, bytes, what);
  pipes().Gm(p, false, b, what);
  return b;
}

GmBuffer& GmWrite(Pipe p, const void* ptr, uint64_t bytes, const char* what) {
  GmBuffer& b = GmRegistry::instance().Find(ptr, bytes, what);
  const bool atomic = core().atomicElemSize != 0;
  switch (b.mode) {
    case GmMode::kInput:
      Fail(std::string(what) + ": writes into input '" + b.name + "'");
    case GmMode::kAccumulate:
      if (!atomic) {
        Fail(std::string(what) + ": plain write into '" + b.name + "', which several blocks accumulate into: an "
             "atomic add is required, i.e. the copy must sit between SetAtomicAdd and SetAtomicNone");
      }
      break;
    case GmMode::kOutput: {
      if (atomic) Fail(std::string(what) + ": atomic add into '" + b.name + "', a plain output (SetAtomicNone missing?)");
      PipeModel& pm = pipes();
      const uint32_t me = core().blockIdx, seq = pm.Seq(p);
      if (me > 255 || seq >= (1u << 22)) Fail("model limit: output ownership tracks 256 blocks of 4M instructions per pipe");
      const uint32_t tag = (me << 24) | (uint32_t(p) << 22) | seq;
      const uint64_t first = uint64_t(static_cast<const uint8_t*>(ptr) - b.begin) / 4;
      for (uint64_t i = first; i < first + (bytes + 3) / 4 && i < b.owner.size(); ++i) {
        const uint32_t o = b.owner[i];
        if (o != kNoOwner) {
          if (o >> 24 != me) {
            Fail(std::string(what) + ": blocks " + Str(o >> 24) + " and " + Str(me) + " both write element " + Str(i) +
                 " of '" + b.name + "': the work split overlaps");
          }
          const Pipe earlier = static_cast<Pipe>((o >> 22) & 3u);
          const uint32_t earlierSeq = o & 0x3FFFFFu;
          if (earlier == p && p == Pipe::MTE3 && earlierSeq != seq && !pm.Ordered(p, p, earlierSeq)) {
            Fail(std::string(what) + ": two MTE3 copies write element " + Str(i) + " of '" + b.name +
                 "' with nothing ordering them: missing " + MissingSync(p, p));
          }
        }
        b.owner[i] = tag;
      }
      break;
    }
  }
  pipes().Gm(p, true, b, what);
  return b;
}

}  // namespace sim
}  // namespace AscendC
