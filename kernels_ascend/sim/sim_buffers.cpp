// TPipe (UB and event ids) and the queue hand-offs of TQue in the AscendC CPU model
// (see include/sim/tensors.h).
#include "kernel_operator.h"

namespace AscendC {

namespace {
TPipe* g_pipe = nullptr;
}

TPipe* GetTPipePtr() {
  if (g_pipe == nullptr) sim::Fail("GetTPipePtr: no TPipe exists");
  return g_pipe;
}

TPipe::TPipe() {
  if (g_pipe != nullptr) sim::Fail("TPipe: a second TPipe while one is alive");
  g_pipe = this;
  // Fresh UB holds garbage on the device: fill it with a NaN pattern so reads of unwritten data show.
  std::memset(sim::core().UbBase(), 0xFF, sim::core().ubCapacity);
}

// TPipe::Destroy ends with pipe_barrier(PIPE_ALL) (impl/basic_api/kernel_tpipe_impl.h).
TPipe::~TPipe() {
  try {
    sim::pipes().Barrier(PIPE_ALL);
  } catch (const std::exception& e) {
    sim::Defer(e.what());
  }
  g_pipe = nullptr;
}

uint32_t TPipe::Reserve(uint32_t num, uint32_t len, const char* what) {
  const uint64_t aligned = (uint64_t(len) + sim::kBlock - 1) / sim::kBlock * sim::kBlock;
  const uint64_t total = used_ + aligned * num;
  if (len == 0) sim::Fail(std::string(what) + ": zero-length buffer");
  if (total > sim::core().ubCapacity) {
    sim::Fail(std::string(what) + ": UB capacity exceeded: " + sim::Str(num) + " x " + sim::Str(aligned) +
              " bytes requested with " + sim::Str(used_) + " already in use, capacity " +
              sim::Str(sim::core().ubCapacity) + " bytes (192 KiB less the 256 B + 8 KiB AscendC reserves, "
              "NPU架构版本2201.md)");
  }
  used_ = static_cast<uint32_t>(total);
  if (used_ > sim::core().ubPeak) sim::core().ubPeak = used_;
  ++buffers_;
  return static_cast<uint32_t>(aligned);
}

void TPipe::Label(uint32_t lo, uint32_t hi, const std::string& kind) {
  sim::pipes().Label(lo, hi, kind + " of InitBuffer #" + sim::Str(buffers_));
}

int32_t TPipe::LowestFree(HardEvent evt, const char* what) const {
  const uint8_t taken = occupied_[static_cast<int>(evt)];
  for (int32_t id = 0; id < sim::kEventIds; ++id)
    if (!(taken & (1u << id))) return id;
  sim::Fail(std::string(what) + ": all 8 ids of HardEvent::" + sim::EventName(evt) + " are allocated");
}

int32_t TPipe::AllocId(HardEvent evt) {
  const int32_t id = LowestFree(evt, "TPipe::AllocEventID");
  occupied_[static_cast<int>(evt)] |= uint8_t(1u << id);
  return id;
}

void TPipe::ReleaseId(HardEvent evt, int32_t id) {
  if (id < 0 || id >= sim::kEventIds) sim::Fail("TPipe::ReleaseEventID: id " + std::to_string(id) + " outside 0..7");
  occupied_[static_cast<int>(evt)] &= uint8_t(~(1u << id));
}

// --------------------------------------------------------------------------- TQue

void TQueBase::Init(TPosition pos, uint32_t depthIn, uint32_t numIn, uint32_t lenIn, uint32_t baseIn) {
  const bool in = pos == TPosition::VECIN;
  enQueEvt = in ? HardEvent::MTE2_V : HardEvent::V_MTE3;
  freeEvt = in ? HardEvent::V_MTE2 : HardEvent::MTE3_V;
  depth = depthIn;
  num = numIn;
  len = lenIn;
  base = baseIn;
  cursor = 0;
  state.assign(num, State::kFree);
  freeId.assign(num, -1);
  enQueId.assign(num, -1);
  life.assign(num, 0);
  fifo.clear();
}

uint32_t TQueBase::Alloc() {
  if (num == 0) sim::Fail("TQue::AllocTensor: the queue was never given buffers (TPipe::InitBuffer)");
  for (uint32_t k = 0; k < num; ++k) {
    const uint32_t i = (cursor + k) % num;
    if (state[i] != State::kFree) continue;
    cursor = (i + 1) % num;
    if (freeId[i] >= 0) {   // the pipe that used the buffer last must be done with it
      sim::pipes().WaitFlag(freeEvt, freeId[i]);
      GetTPipePtr()->ReleaseId(freeEvt, freeId[i]);
      freeId[i] = -1;
    }
    state[i] = State::kAllocated;
    return i;
  }
  sim::Fail("TQue::AllocTensor: all " + sim::Str(num) + " buffers of the queue are in use (FreeTensor missing?)");
}

void TQueBase::EnQueIndex(uint32_t i) {
  if (state[i] != State::kAllocated && state[i] != State::kDequeued) {
    sim::Fail("TQue::EnQue: the tensor's buffer is not allocated (AllocTensor) or is already enqueued");
  }
  if (fifo.size() >= depth) sim::Fail("TQue::EnQue: the queue already holds depth=" + sim::Str(depth) + " tensors");
  enQueId[i] = GetTPipePtr()->AllocId(enQueEvt);
  sim::pipes().SetFlag(enQueEvt, enQueId[i]);
  state[i] = State::kEnqueued;
  fifo.push_back(i);
}

uint32_t TQueBase::DeQueIndex() {
  if (fifo.empty()) sim::Fail("TQue::DeQue: the queue is empty (EnQue missing?)");
  const uint32_t i = fifo.front();
  fifo.erase(fifo.begin());
  sim::pipes().WaitFlag(enQueEvt, enQueId[i]);
  GetTPipePtr()->ReleaseId(enQueEvt, enQueId[i]);
  enQueId[i] = -1;
  state[i] = State::kDequeued;
  return i;
}

void TQueBase::Free(uint32_t i) {
  if (state[i] == State::kFree) sim::Fail("TQue::FreeTensor: the buffer is not allocated");
  if (state[i] == State::kEnqueued) sim::Fail("TQue::FreeTensor: the tensor is still enqueued (DeQue it first)");
  freeId[i] = GetTPipePtr()->AllocId(freeEvt);
  sim::pipes().SetFlag(freeEvt, freeId[i]);
  state[i] = State::kFree;
  ++life[i];
}

uint32_t TQueBase::Index(uint32_t addr, const char* what) const {
  if (num == 0 || addr < base || addr >= base + num * len || (addr - base) % len != 0) {
    sim::Fail(std::string(what) + ": the tensor does not start a buffer of this queue");
  }
  return (addr - base) / len;
}

// A queue ending its life with a buffer allocated or enqueued means a missing FreeTensor or DeQue;
// destructors must not throw, so RunKernel reports it when the kernel returns. Pending free
// events are waited here, as TPipe::Destroy does on the device.
TQueBase::~TQueBase() {
  bool allocated = false;
  for (uint32_t i = 0; i < num; ++i) {
    allocated = allocated || state[i] == State::kAllocated || state[i] == State::kDequeued;
    if (freeId[i] < 0) continue;
    try {
      sim::pipes().WaitFlag(freeEvt, freeId[i]);
      if (g_pipe != nullptr) g_pipe->ReleaseId(freeEvt, freeId[i]);
    } catch (const std::exception& e) {
      sim::Defer(e.what());
    }
  }
  if (allocated) sim::Defer("TQue: a buffer was still allocated when the kernel returned (FreeTensor missing)");
  if (!fifo.empty()) sim::Defer("TQue: a tensor was still enqueued when the kernel returned (DeQue missing)");
}

}  // namespace AscendC
