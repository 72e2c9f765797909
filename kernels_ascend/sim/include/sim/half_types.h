// The 16-bit float types of the AscendC CPU model, `half` (IEEE binary16) and `bfloat16_t`: storage
// only (the model does no arithmetic in them), converted from float with round-to-nearest-even as
// Cast's CAST_RINT does and to float exactly. Part of kernel_operator.h.
#ifndef MXDCN_SIM_HALF_TYPES_H
#define MXDCN_SIM_HALF_TYPES_H

namespace AscendC {
namespace sim {

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// float -> binary16, round to nearest even; overflow to +-Inf, NaN kept a NaN.
inline uint16_t FloatToHalfBits(float f) {
  const uint32_t u = FloatBits(f), sign = (u >> 16) & 0x8000u, absBits = u & 0x7FFFFFFFu;
  if (absBits >= 0x7F800000u) return uint16_t(sign | 0x7C00u | (absBits > 0x7F800000u ? 0x200u : 0u));
  const float a = BitsFloat(absBits);
  if (a >= 65520.0f) return uint16_t(sign | 0x7C00u);   // rounds past the largest half (65504)
  if (a < 6.103515625e-05f) {                           // subnormal half: multiples of 2^-24
    const float scaled = std::nearbyint(a * 16777216.0f);
    return uint16_t(sign | uint32_t(scaled));
  }
  const uint32_t mant = absBits & 0x7FFFFFu;
  const int32_t exp = int32_t(absBits >> 23) - 127 + 15;
  uint32_t h = (uint32_t(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1FFFu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;   // carries into the exponent correctly
  return uint16_t(sign | h);
}
inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  if (exp == 0) return BitsFloat(sign) + (sign ? -1.0f : 1.0f) * float(mant) * 5.9604644775390625e-08f;
  if (exp == 31) return BitsFloat(sign | 0x7F800000u | (mant << 13));
  return BitsFloat(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}
// float -> bfloat16 (the top 16 bits), round to nearest even; NaN kept a NaN.
inline uint16_t FloatToBf16Bits(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace sim
}  // namespace AscendC

// Global types, as CANN declares them (kernel_fp16.h / kernel_bf16.h).
struct half {
  uint16_t bits = 0;
  half() = default;
  explicit half(float f) : bits(AscendC::sim::FloatToHalfBits(f)) {}
  float ToFloat() const { return AscendC::sim::HalfBitsToFloat(bits); }
};
struct bfloat16_t {
  uint16_t bits = 0;
  bfloat16_t() = default;
  explicit bfloat16_t(float f) : bits(AscendC::sim::FloatToBf16Bits(f)) {}
  float ToFloat() const { return AscendC::sim::BitsFloat(uint32_t(bits) << 16); }
};

#endif  // MXDCN_SIM_HALF_TYPES_H
