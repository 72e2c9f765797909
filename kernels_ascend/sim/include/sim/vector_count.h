// The level-2 ("count") form of the vector instructions in the AscendC CPU model: the first `count`
// elements of every operand, contiguous; the API runs them as 256-byte repeats, the last one partial
// (the `const int32_t& count` overloads of include/basic_api/kernel_operator_vec_binary_intf.h,
// _binary_scalar_intf.h, _duplicate_intf.h). Rules besides bounds, 32-byte alignment and pipe
// ordering: count >= 0 (0 is a NOP that still costs an instruction, Vector指令理论性能汇总.md);
// a destination and a source of one element size overlap 100% or not at all, operands of different
// element sizes not at all (通用说明和约束.md, 通用地址重叠约束). Cost: vec_instr_cycles + one
// vec_cycles_per_repeat per 256-byte repeat (the tables of Vector指令理论性能汇总.md cited in costs.h).
#ifndef MXDCN_SIM_VECTOR_COUNT_H
#define MXDCN_SIM_VECTOR_COUNT_H

namespace AscendC {
namespace sim {

// UB bytes [addr, addr + bytes) of a count-form operand.
struct Span {
  uint32_t addr;
  uint32_t bytes;
};

void CheckCount(const char* what, int64_t count);
// 100% overlap (same start and length) or none; `sameSize` false: none at all.
void CheckSpanOverlap(const char* what, const Span& dst, const Span& src, bool sameSize, const char* srcName);
void SpanTouch(const Span& s, bool write, const char* what);
inline uint32_t RepeatsOf(uint64_t bytes) { return uint32_t((bytes + kRepeatBytes - 1) / kRepeatBytes); }

// Bounds and alignment of `count` elements of `t`; its first element and span.
template <typename T>
T* SpanPtr(const LocalTensor<T>& t, uint64_t count, const char* what, Span& span) {
  t.CheckAligned(what);
  T* p = t.Ptr(0, count, what);
  span = Span{t.Addr(), uint32_t(count * sizeof(T))};
  return p;
}

// Counters and timeline of a finished count-form instruction over `elements` elements of `bytes`.
inline void CountDone(uint64_t elements, uint64_t bytes, double cyclesPerRepeat) {
  PipeModel& pm = pipes();
  const uint32_t repeats = RepeatsOf(bytes);
  pm.counters.vec_instructions += 1;
  pm.counters.vec_repeats += repeats;
  pm.counters.vec_elements += double(elements);
  pm.End(Pipe::V, cost::vec_instr_cycles + repeats * cyclesPerRepeat);
}

template <typename T, typename F>
void UnaryCount(const char* what, const LocalTensor<T>& dst, const LocalTensor<T>& src, int64_t count, F f) {
  CheckCount(what, count);
  Span d, s;
  T* pd = SpanPtr(dst, uint64_t(count), what, d);
  const T* ps = SpanPtr(src, uint64_t(count), what, s);
  CheckSpanOverlap(what, d, s, true, "src");
  pipes().Begin(Pipe::V);
  SpanTouch(s, false, what);
  SpanTouch(d, true, what);
  for (int64_t i = 0; i < count; ++i) pd[i] = f(ps[i]);
  CountDone(uint64_t(count), d.bytes, cost::vec_cycles_per_repeat);
}

template <typename T, typename F>
void BinaryCount(const char* what, const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,
                 int64_t count, F f) {
  CheckCount(what, count);
  Span d, a, b;
  T* pd = SpanPtr(dst, uint64_t(count), what, d);
  const T* pa = SpanPtr(src0, uint64_t(count), what, a);
  const T* pb = SpanPtr(src1, uint64_t(count), what, b);
  CheckSpanOverlap(what, d, a, true, "src0");
  CheckSpanOverlap(what, d, b, true, "src1");
  pipes().Begin(Pipe::V);
  SpanTouch(a, false, what);
  SpanTouch(b, false, what);
  SpanTouch(d, true, what);
  for (int64_t i = 0; i < count; ++i) pd[i] = f(pa[i], pb[i]);
  CountDone(uint64_t(count), d.bytes, cost::vec_cycles_per_repeat);
}

}  // namespace sim

template <typename T>
void Duplicate(const LocalTensor<T>& dst, const T& scalar, const int32_t& count) {
  const char* what = "Duplicate(count)";
  sim::CheckCount(what, count);
  sim::Span d;
  T* pd = sim::SpanPtr(dst, uint64_t(count), what, d);
  sim::pipes().Begin(sim::Pipe::V);
  sim::SpanTouch(d, true, what);
  for (int32_t i = 0; i < count; ++i) pd[i] = scalar;
  sim::CountDone(uint64_t(count), d.bytes, sim::cost::vec_cycles_per_repeat);
}

template <typename T>
void Add(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, const int32_t& count) {
  sim::BinaryCount("Add(count)", dst, src0, src1, count, [](T a, T b) { return a + b; });
}
template <typename T>
void Sub(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, const int32_t& count) {
  sim::BinaryCount("Sub(count)", dst, src0, src1, count, [](T a, T b) { return a - b; });
}
template <typename T>
void Mul(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, const int32_t& count) {
  sim::BinaryCount("Mul(count)", dst, src0, src1, count, [](T a, T b) { return a * b; });
}
// Bitwise and of 16-bit lanes (And supports int16_t/uint16_t, kernel_operator_vec_binary_intf.h;
// 128 lanes per cycle = one 256-byte repeat, Vector指令理论性能汇总.md table 7).
template <typename T>
void And(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, const int32_t& count) {
  static_assert(std::is_same<T, uint16_t>::value || std::is_same<T, int16_t>::value,
                "And takes int16_t / uint16_t lanes (kernel_operator_vec_binary_intf.h)");
  sim::BinaryCount("And(count)", dst, src0, src1, count, [](T a, T b) { return T(a & b); });
}
template <typename T, bool isSetMask = true>
void Adds(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalar, const int32_t& count) {
  sim::UnaryCount("Adds(count)", dst, src, count, [&](T s) { return s + scalar; });
}
template <typename T, bool isSetMask = true>
void Muls(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalar, const int32_t& count) {
  sim::UnaryCount("Muls(count)", dst, src, count, [&](T s) { return s * scalar; });
}

}  // namespace AscendC

#endif  // MXDCN_SIM_VECTOR_COUNT_H
