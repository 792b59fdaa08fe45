// The arithmetic of the GPU CRC32C (kernels/crc32c_kernel.cu), shared with host code so that the
// CPU tests check the very functions the GPU runs (kernels/crc32c_math_test.cc).
//
// NOTE [CRC32C of a span in pieces, all on the GPU]
// raw(M) is the CRC32C register after M with initial value 0 and no final inversion; it is linear:
//   raw(A || B) = shift_|B|(raw(A)) ^ raw(B)        (shift_n: what appending n zero bytes does)
// and leading zero bytes do not change it. A span of n bytes is cut into pieces aligned to its
// END: every piece has kPieceBytes but the first, which has the rest (n - (count-1)*P, 1..P), so
// the first piece is, for raw(), a full piece with leading zeros. One thread computes each piece's
// raw CRC (slicing-by-8); one thread per span then joins them by Horner's rule with one operator,
//   R = shift_P(R) ^ raw(piece_k)                    (shift_P as 4 byte tables: 4 lookups)
// and turns R into the standard CRC (initial ~0, final ~): since CRC32C is affine,
//   crc(M) = R ^ crc(0^n) = R ^ ~shift_n(0xFFFFFFFF)
// where shift_n is the product of shift_{2^j} (32x32 GF(2) matrices) for the bits j of n.
// No per-piece work is left to the host.
#ifndef SHARDCAST_KERNELS_CRC32C_MATH_H_
#define SHARDCAST_KERNELS_CRC32C_MATH_H_

#include <cstdint>
#include <cstring>

#include "kernels/host_device.h"

namespace shardcast {
namespace crc32c_math {

inline constexpr uint64_t kPieceBytes = 4096;
inline constexpr int kMaxLengthBits = 48;  // spans shorter than 2^48 bytes

// The tables one call uploads: slicing-by-8 (common/crc32c's Crc32cTables), shift_P as byte
// tables, and shift_{2^j} for j < kMaxLengthBits as matrices (column i = the image of bit i).
struct Tables {
  uint32_t slice8[8][256];
  uint32_t shift_piece[4][256];
  uint32_t shift_pow2[kMaxLengthBits][32];
};

// How many pieces a span of n bytes has (0 for an empty span).
SC_HOST_DEVICE uint64_t PieceCount(uint64_t n) { return (n + kPieceBytes - 1) / kPieceBytes; }

// Piece k of a span of n bytes (count = PieceCount(n) > k): the first holds the remainder.
SC_HOST_DEVICE void PieceRange(uint64_t n, uint64_t k, uint64_t* start, uint64_t* len) {
  const uint64_t first = n - (PieceCount(n) - 1) * kPieceBytes;
  *start = k == 0 ? 0 : first + (k - 1) * kPieceBytes;
  *len = k == 0 ? first : kPieceBytes;
}

SC_HOST_DEVICE uint64_t Load8(const uint8_t* p) {  // p is 8-byte aligned
#if defined(__CUDA_ARCH__)
  return __ldg(reinterpret_cast<const unsigned long long*>(p));
#else
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
#endif
}

// raw CRC register `c` extended over n bytes at p (slicing-by-8 on aligned 8-byte loads).
SC_HOST_DEVICE uint32_t RawExtend(const uint32_t (*t)[256], uint32_t c, const uint8_t* p, uint64_t n) {
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
    --n;
  }
  for (; n >= 8; n -= 8, p += 8) {
    const uint64_t v = Load8(p);
    const uint32_t lo = static_cast<uint32_t>(v) ^ c, hi = static_cast<uint32_t>(v >> 32);
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
        t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  while (n-- > 0) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  return c;
}

// shift_P(x) through its byte tables.
SC_HOST_DEVICE uint32_t ShiftPiece(const uint32_t (*t)[256], uint32_t x) {
  return t[0][x & 0xFF] ^ t[1][(x >> 8) & 0xFF] ^ t[2][(x >> 16) & 0xFF] ^ t[3][x >> 24];
}

// A 32x32 GF(2) matrix (columns) times x.
SC_HOST_DEVICE uint32_t ApplyMatrix(const uint32_t* columns, uint32_t x) {
  uint32_t out = 0;
  for (int i = 0; i < 32; ++i) out ^= (0u - ((x >> i) & 1u)) & columns[i];
  return out;
}

// The standard CRC32C of a span of n bytes whose pieces joined by Horner's rule gave `raw`.
SC_HOST_DEVICE uint32_t FinishSpan(const Tables& t, uint32_t raw, uint64_t n) {
  uint32_t v = 0xFFFFFFFFu;
  for (int j = 0; j < kMaxLengthBits; ++j) {
    if ((n >> j) & 1) v = ApplyMatrix(t.shift_pow2[j], v);
  }
  return raw ^ ~v;
}

}  // namespace crc32c_math
}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_CRC32C_MATH_H_
