#include "common/crc32c.h"

#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace shardcast {
namespace {

struct Tables {
  uint32_t t[8][256];
  Tables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
  }
};

const Tables& T() {
  static const Tables* kTables = new Tables;
  return *kTables;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cHw(const uint8_t* p, size_t n, uint32_t crc) {
  uint64_t c = ~crc;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}

bool HasSse42() {
  static const bool kHas = __builtin_cpu_supports("sse4.2");
  return kHas;
}
#endif

}  // namespace

uint32_t Crc32cPortable(const void* data, size_t n, uint32_t crc) {
  const Tables& t = T();
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= c;
    c = t.t[7][lo & 0xFF] ^ t.t[6][(lo >> 8) & 0xFF] ^ t.t[5][(lo >> 16) & 0xFF] ^ t.t[4][lo >> 24] ^
        t.t[3][hi & 0xFF] ^ t.t[2][(hi >> 8) & 0xFF] ^ t.t[1][(hi >> 16) & 0xFF] ^ t.t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = (c >> 8) ^ t.t[0][(c ^ *p++) & 0xFF];
  return ~c;
}

const uint32_t* Crc32cTables() { return &T().t[0][0]; }

namespace {

uint32_t MatrixTimes(const uint32_t* m, uint32_t v) {
  uint32_t sum = 0;
  for (int i = 0; v != 0; ++i, v >>= 1) {
    if (v & 1) sum ^= m[i];
  }
  return sum;
}

void MatrixSquare(uint32_t* square, const uint32_t* m) {
  for (int i = 0; i < 32; ++i) square[i] = MatrixTimes(m, m[i]);
}

// zlib's crc32_combine operator (for the Castagnoli polynomial): `crc` followed by `len` zero
// bytes, on finalized CRCs (the pre- and post-inversions cancel).
uint32_t ZeroExtend(uint32_t crc, uint64_t len) {
  if (len == 0) return crc;
  uint32_t even[32], odd[32];
  odd[0] = 0x82F63B78u;  // one zero bit
  for (int i = 1; i < 32; ++i) odd[i] = 1u << (i - 1);
  MatrixSquare(even, odd);  // two zero bits
  MatrixSquare(odd, even);  // four zero bits
  do {
    MatrixSquare(even, odd);  // one zero byte, then 4, 16, ...
    if (len & 1) crc = MatrixTimes(even, crc);
    len >>= 1;
    if (len == 0) break;
    MatrixSquare(odd, even);
    if (len & 1) crc = MatrixTimes(odd, crc);
    len >>= 1;
  } while (len != 0);
  return crc;
}

}  // namespace

Crc32cShift::Crc32cShift(uint64_t len) {
  for (int i = 0; i < 32; ++i) columns_[i] = ZeroExtend(1u << i, len);
}

uint32_t Crc32cShift::Combine(uint32_t crc_a, uint32_t crc_b) const { return MatrixTimes(columns_, crc_a) ^ crc_b; }

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) { return Crc32cShift(len_b).Combine(crc_a, crc_b); }

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
#if defined(__x86_64__)
  if (HasSse42()) return Crc32cHw(static_cast<const uint8_t*>(data), n, crc);
#endif
  return Crc32cPortable(data, n, crc);
}

}  // namespace shardcast
