#include "common/crc32c.h"

#include <cstring>

#include "common/gf2_crc.h"

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


Crc32cShift::Crc32cShift(uint64_t len) {
  gf2_crc::ZeroExtendColumns(0x82F63B78u, len, columns_);
}

uint32_t Crc32cShift::Combine(uint32_t crc_a, uint32_t crc_b) const { return gf2_crc::MatrixTimes(columns_, crc_a) ^ crc_b; }

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) { return Crc32cShift(len_b).Combine(crc_a, crc_b); }

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
#if defined(__x86_64__)
  if (HasSse42()) return Crc32cHw(static_cast<const uint8_t*>(data), n, crc);
#endif
  return Crc32cPortable(data, n, crc);
}

}  // namespace shardcast
