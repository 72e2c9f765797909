// Stand-in for kernel_bf16.h of CANN's closed CPU-debug library (the host `bfloat16_t` type), for
// the real-header type-check only.
#pragma once
struct bfloat16_t {
  float v;
  constexpr bfloat16_t() : v(0) {}
  template <typename T>
  constexpr bfloat16_t(T x) : v(static_cast<float>(x)) {}
  constexpr operator float() const { return v; }
  constexpr float ToFloat() const { return v; }
};
