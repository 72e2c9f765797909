// Tensors and buffers of the AscendC CPU model: GlobalTensor, LocalTensor, TQue, TBuf, TPipe.
// Declarations follow include/basic_api/kernel_tensor.h and kernel_tpipe.h; the queue hand-offs
// follow impl/basic_api/kernel_tquebind_impl.h (see TQueBase).
#ifndef MXDCN_SIM_TENSORS_H
#define MXDCN_SIM_TENSORS_H

namespace AscendC {

namespace sim {
const char* PositionName(TPosition pos);
}

// A view of GM. Bounds are the tensor's own: SetGlobalBuffer(buffer, bufferSize) -- a slice made
// with operator[] keeps them -- and every access must stay inside (SetGlobalBuffer.md: bufferSize is
// the number of elements the tensor holds). Without bufferSize (GetSize() == 0) only the launch's
// registered GM buffers bound it.
template <typename T>
class GlobalTensor {
 public:
  void SetGlobalBuffer(__gm__ T* buffer, uint64_t bufferSize) {
    origin_ = data_ = buffer;
    size_ = bufferSize;
  }
  void SetGlobalBuffer(__gm__ T* buffer) { SetGlobalBuffer(buffer, 0); }
  GlobalTensor operator[](uint64_t offset) const {
    GlobalTensor t = *this;
    t.data_ = data_ + offset;
    return t;
  }
  uint64_t GetSize() const { return size_; }
  // PIPE_S (include/basic_api/kernel_tensor.h: __inout_pipe__(S)).
  T GetValue(uint64_t i) const {
    const char* what = "GlobalTensor::GetValue";
    CheckRange(i, 1, what);
    sim::PipeModel& pm = sim::pipes();
    pm.Begin(sim::Pipe::S);
    sim::GmRead(sim::Pipe::S, data_ + i, sizeof(T), what);
    pm.counters.scalar_reads += 1;
    return data_[i];
  }
  void SetValue(uint64_t i, const T& v) {
    const char* what = "GlobalTensor::SetValue";
    CheckRange(i, 1, what);
    sim::PipeModel& pm = sim::pipes();
    pm.Begin(sim::Pipe::S);
    sim::GmWrite(sim::Pipe::S, data_ + i, sizeof(T), what);
    pm.counters.scalar_writes += 1;
    data_[i] = v;
  }
  T* GetPhyAddr() const { return data_; }

  // Model internals: elements [first, first + count) of this view lie inside the tensor.
  void CheckRange(uint64_t first, uint64_t count, const char* what) const {
    if (size_ == 0) return;
    const uint64_t lo = uint64_t(data_ - origin_) + first, hi = lo + count;
    if (data_ < origin_ || hi > size_) {
      sim::Fail(std::string(what) + ": GM elements [" + sim::Str(lo) + ", " + sim::Str(hi) + ") of a GlobalTensor of " +
                sim::Str(size_) + " elements (its SetGlobalBuffer size): past the tensor's end");
    }
  }
  // The offset in bytes of this view from the start of its registered GM buffer is not known here;
  // the copy functions ask the registry.

 private:
  T* origin_ = nullptr;
  T* data_ = nullptr;
  uint64_t size_ = 0;
};

// A view into one UB buffer: knows the buffer's bounds (every access is checked against them) and,
// for a TQue buffer, its life: FreeTensor ends it, and any later use of the view is an error.
template <typename T>
class LocalTensor {
 public:
  LocalTensor() = default;
  LocalTensor(uint32_t addr, uint32_t bufBegin, uint32_t bufEnd, const uint32_t* life = nullptr, uint32_t gen = 0)
      : addr_(addr), begin_(bufBegin), end_(bufEnd), life_(life), gen_(gen) {}
  LocalTensor operator[](uint32_t offset) const {
    return LocalTensor(addr_ + offset * uint32_t(sizeof(T)), begin_, end_, life_, gen_);
  }
  // PIPE_S (include/basic_api/kernel_tensor.h: __inout_pipe__(S)).
  T GetValue(uint32_t i) const {
    const char* what = "LocalTensor::GetValue";
    T* p = Ptr(i, 1, what);
    sim::PipeModel& pm = sim::pipes();
    pm.Begin(sim::Pipe::S);
    const uint32_t lo = addr_ + i * uint32_t(sizeof(T));
    pm.Ub(sim::Pipe::S, false, lo, lo + uint32_t(sizeof(T)), what);
    pm.counters.scalar_reads += 1;
    return *p;
  }
  void SetValue(uint32_t i, const T& v) const {
    const char* what = "LocalTensor::SetValue";
    T* p = Ptr(i, 1, what);
    sim::PipeModel& pm = sim::pipes();
    pm.Begin(sim::Pipe::S);
    const uint32_t lo = addr_ + i * uint32_t(sizeof(T));
    pm.Ub(sim::Pipe::S, true, lo, lo + uint32_t(sizeof(T)), what);
    pm.counters.scalar_writes += 1;
    *p = v;
  }
  uint32_t GetSize() const { return (end_ - addr_) / uint32_t(sizeof(T)); }
  uint64_t GetPhyAddr() const { return addr_; }
  template <typename U>
  LocalTensor<U> ReinterpretCast() const { return LocalTensor<U>(addr_, begin_, end_, life_, gen_); }

  // Model internals: element i of this view, after checking that `count` elements fit the buffer
  // and that the buffer was not released.
  T* Ptr(uint64_t i, uint64_t count, const char* what) const {
    if (end_ == 0) sim::Fail(std::string(what) + ": the LocalTensor was never allocated");
    if (life_ != nullptr && *life_ != gen_) {
      sim::Fail(std::string(what) + ": " + sim::pipes().UbName(begin_, end_) +
                " was released by FreeTensor before this use (use after free: the queue may already have "
                "handed the buffer out again; TQue/FreeTensor.md)");
    }
    const uint64_t lo = addr_ + i * sizeof(T), hi = lo + count * sizeof(T);
    if (lo < begin_ || hi > end_) {
      sim::Fail(std::string(what) + ": access to UB bytes [" + sim::Str(lo) + ", " + sim::Str(hi) +
                ") leaves its buffer [" + sim::Str(begin_) + ", " + sim::Str(end_) + ")");
    }
    return reinterpret_cast<T*>(sim::core().UbBase() + lo);
  }
  void CheckAligned(const char* what) const {
    if (addr_ % sim::kBlock != 0) {
      sim::Fail(std::string(what) + ": UB address " + sim::Str(addr_) + " is not 32-byte aligned (通用说明和约束.md, table 2)");
    }
  }
  uint32_t Addr() const { return addr_; }
  uint32_t BufBegin() const { return begin_; }
  uint32_t BufEnd() const { return end_; }

 private:
  uint32_t addr_ = 0, begin_ = 0, end_ = 0;
  const uint32_t* life_ = nullptr;
  uint32_t gen_ = 0;
};

// --------------------------------------------------------------------------- TPipe, TQue, TBuf

class TPipe;

// A queue's buffers and the hand-offs the real TQue performs (impl/basic_api/kernel_tquebind_impl.h,
// event kinds from GetQueEvt in impl/basic_api/kernel_event.h): for VECIN (GM -> UB) EnQue sets
// MTE2_V, DeQue waits for it, FreeTensor sets V_MTE2 and the next AllocTensor of that buffer waits
// for it; for VECOUT (UB -> GM) the same with V_MTE3 and MTE3_V. At kernel end the pending free
// events are waited (TPipe::Destroy in impl/basic_api/kernel_tpipe_impl.h).
struct TQueBase {
  enum class State : uint8_t { kFree, kAllocated, kEnqueued, kDequeued };
  uint32_t num = 0, len = 0, base = 0, depth = 0, cursor = 0;
  HardEvent enQueEvt = HardEvent::MAX, freeEvt = HardEvent::MAX;
  std::vector<State> state;
  std::vector<int32_t> freeId, enQueId;   // pending event id per buffer, -1 when none
  std::vector<uint32_t> life;             // incremented by FreeTensor: ends the buffer's LocalTensors
  std::vector<uint32_t> fifo;             // enqueued buffer indices
  ~TQueBase();

  void Init(TPosition pos, uint32_t depthIn, uint32_t numIn, uint32_t lenIn, uint32_t baseIn);
  uint32_t Alloc();
  void EnQueIndex(uint32_t i);
  uint32_t DeQueIndex();
  void Free(uint32_t i);
  uint32_t Index(uint32_t addr, const char* what) const;
  template <typename T>
  LocalTensor<T> Tensor(uint32_t i) const {
    return LocalTensor<T>(base + i * len, base + i * len, base + (i + 1) * len, &life[i], life[i]);
  }
};

template <TPosition pos, int32_t queDepth>
class TQue : public TQueBase {
  static_assert(pos == TPosition::VECIN || pos == TPosition::VECOUT,
                "the model supports TQue<VECIN> and TQue<VECOUT> (TQue<VECCALC> is no queue: use TBuf)");
  static_assert(queDepth >= 1, "the model supports queues of depth >= 1");

 public:
  template <typename T>
  LocalTensor<T> AllocTensor() { return Tensor<T>(Alloc()); }
  template <typename T>
  void EnQue(const LocalTensor<T>& t) { EnQueIndex(Index(t.Addr(), "TQue::EnQue")); }
  template <typename T>
  LocalTensor<T> DeQue() { return Tensor<T>(DeQueIndex()); }
  template <typename T>
  void FreeTensor(const LocalTensor<T>& t) { Free(Index(t.Addr(), "TQue::FreeTensor")); }
};

template <TPosition pos>
class TBuf {
 public:
  template <typename T>
  LocalTensor<T> Get() const {
    if (len_ == 0) sim::Fail("TBuf::Get: the buffer was never given memory (TPipe::InitBuffer)");
    return LocalTensor<T>(base_, base_, base_ + len_);
  }
  template <typename T>
  LocalTensor<T> Get(uint32_t count) const {
    if (uint64_t(count) * sizeof(T) > len_) sim::Fail("TBuf::Get: " + sim::Str(count) + " elements exceed the buffer");
    return LocalTensor<T>(base_, base_, base_ + count * uint32_t(sizeof(T)));
  }
  uint32_t base_ = 0, len_ = 0;
};

// Hands out UB (every buffer 32-byte aligned, the total never above the UB capacity) and event ids.
class TPipe {
 public:
  TPipe();
  ~TPipe();
  template <TPosition pos, int32_t depth>
  void InitBuffer(TQue<pos, depth>& que, uint32_t num, uint32_t len) {
    if (num == 0 || num > 8) sim::Fail("TPipe::InitBuffer: a queue takes 1 to 8 buffers, got " + sim::Str(num));
    const uint32_t aligned = Reserve(num, len, "TPipe::InitBuffer(TQue)");
    que.Init(pos, uint32_t(depth), num, aligned, used_ - num * aligned);
    for (uint32_t i = 0; i < num; ++i) {
      Label(que.base + i * aligned, que.base + (i + 1) * aligned,
            std::string("TQue<") + sim::PositionName(pos) + "> buffer " + sim::Str(i) + " of " + sim::Str(num));
    }
  }
  template <TPosition pos>
  void InitBuffer(TBuf<pos>& buf, uint32_t len) {
    buf.len_ = Reserve(1, len, "TPipe::InitBuffer(TBuf)");
    buf.base_ = used_ - buf.len_;
    Label(buf.base_, used_, std::string("TBuf<") + sim::PositionName(pos) + ">");
  }
  // Event ids (impl/basic_api/kernel_tpipe_impl.h): Fetch returns the lowest free id without taking
  // it, Alloc takes it until Release.
  TEventID FetchEventID(HardEvent evt) { return TEventID(LowestFree(evt, "TPipe::FetchEventID")); }
  template <HardEvent evt>
  TEventID FetchEventID() { return FetchEventID(evt); }
  template <HardEvent evt>
  TEventID AllocEventID() { return TEventID(AllocId(evt)); }
  template <HardEvent evt>
  void ReleaseEventID(TEventID id) { ReleaseId(evt, id); }
  void Reset() { used_ = 0; }
  uint32_t Used() const { return used_; }

  // Model internals.
  int32_t AllocId(HardEvent evt);
  void ReleaseId(HardEvent evt, int32_t id);

 private:
  uint32_t Reserve(uint32_t num, uint32_t len, const char* what);
  void Label(uint32_t lo, uint32_t hi, const std::string& kind);
  int32_t LowestFree(HardEvent evt, const char* what) const;
  uint32_t used_ = 0;
  uint32_t buffers_ = 0;
  uint8_t occupied_[sim::kEventKinds] = {};
};

TPipe* GetTPipePtr();

}  // namespace AscendC

#endif  // MXDCN_SIM_TENSORS_H
