// Float conversions bit-identical to PyTorch's CPU `.to()`: fp32 -> bf16 and fp32 -> fp16 round to
// nearest even (c10::detail::round_to_nearest_even, c10::detail::fp16_ieee_from_fp32_value),
// including their NaN encodings (bf16 0x7FC0, fp16 0x7E00 with the sign); bf16/fp16 -> fp32 are
// exact. fp16 <-> bf16 go through fp32, as PyTorch does. Shared by the CPU and CUDA executors.
#ifndef SHARDCAST_KERNELS_DTYPE_CAST_H_
#define SHARDCAST_KERNELS_DTYPE_CAST_H_

#include <cstdint>
#include <cstring>

#include "kernels/host_device.h"

namespace shardcast::cast {

SC_HOST_DEVICE uint32_t FloatBits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

SC_HOST_DEVICE float BitsFloat(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

SC_HOST_DEVICE uint16_t FloatToBFloat16(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;  // NaN
  const uint32_t rounding_bias = ((u >> 16) & 1u) + 0x7FFFu;
  return static_cast<uint16_t>((u + rounding_bias) >> 16);
}

SC_HOST_DEVICE float BFloat16ToFloat(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }

// c10::detail::fp16_ieee_from_fp32_value.
SC_HOST_DEVICE uint16_t FloatToHalf(float f) {
  const float scale_to_inf = BitsFloat(0x77800000u);   // 0x1.0p+112
  const float scale_to_zero = BitsFloat(0x08800000u);  // 0x1.0p-110
  const uint32_t w = FloatBits(f);
  const float abs_f = BitsFloat(w & 0x7FFFFFFFu);
  float base = (abs_f * scale_to_inf) * scale_to_zero;
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = BitsFloat((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = FloatBits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// c10::detail::fp16_ieee_to_fp32_value, with NaN decoded by bits: a quiet NaN keeping the payload,
// as x86 (SSE arithmetic and F16C) produces it; GPU arithmetic would canonicalize the payload.
SC_HOST_DEVICE float HalfToFloat(uint16_t h) {
  if ((h & 0x7C00u) == 0x7C00u && (h & 0x03FFu) != 0) {
    return BitsFloat((static_cast<uint32_t>(h & 0x8000u) << 16) | 0x7FC00000u | (static_cast<uint32_t>(h & 0x03FFu) << 13));
  }
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = 0xE0u << 23;
  const float exp_scale = BitsFloat(0x7800000u);  // 0x1.0p-112
  const float normalized_value = BitsFloat((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = 126u << 23;
  const float magic_bias = 0.5f;
  const float denormalized_value = BitsFloat((two_w >> 17) | magic_mask) - magic_bias;
  const uint32_t denormalized_cutoff = 1u << 27;
  const uint32_t result =
      sign | (two_w < denormalized_cutoff ? FloatBits(denormalized_value) : FloatBits(normalized_value));
  return BitsFloat(result);
}

// Element codes for the three float types the executors cast between.
enum class FloatKind : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2 };

SC_HOST_DEVICE float LoadAsFloat(const void* p, FloatKind k) {
  switch (k) {
    case FloatKind::kFloat32: return *static_cast<const float*>(p);
    case FloatKind::kBFloat16: return BFloat16ToFloat(*static_cast<const uint16_t*>(p));
    default: return HalfToFloat(*static_cast<const uint16_t*>(p));
  }
}

SC_HOST_DEVICE void StoreFromFloat(void* p, FloatKind k, float f) {
  switch (k) {
    case FloatKind::kFloat32: *static_cast<float*>(p) = f; break;
    case FloatKind::kBFloat16: *static_cast<uint16_t*>(p) = FloatToBFloat16(f); break;
    default: *static_cast<uint16_t*>(p) = FloatToHalf(f); break;
  }
}

}  // namespace shardcast::cast

#endif  // SHARDCAST_KERNELS_DTYPE_CAST_H_
