// Stand-in for kernel_fp16.h of CANN's closed CPU-debug library (the host `half` type), for the
// real-header type-check only: a float in a wrapper, with the conversions the headers use.
#pragma once
struct half {
  float v;
  constexpr half() : v(0) {}
  template <typename T>
  constexpr half(T x) : v(static_cast<float>(x)) {}
  constexpr operator float() const { return v; }
  constexpr float ToFloat() const { return v; }
};
