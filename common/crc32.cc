#include "common/crc32.h"

#include <libdeflate.h>

namespace shardcast {
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

// zlib's crc32_combine operator for the reflected IEEE polynomial: `crc` followed by `len`
// zero bytes, on finalized CRCs (the pre- and post-inversions cancel).
uint32_t ZeroExtend(uint32_t crc, uint64_t len) {
  if (len == 0) return crc;
  uint32_t even[32], odd[32];
  odd[0] = 0xEDB88320u;  // one zero bit
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

uint32_t Crc32(const void* data, size_t n, uint32_t crc) { return libdeflate_crc32(crc, data, n); }

Crc32Shift::Crc32Shift(uint64_t len) {
  for (int i = 0; i < 32; ++i) columns_[i] = ZeroExtend(1u << i, len);
}

uint32_t Crc32Shift::Combine(uint32_t crc_a, uint32_t crc_b) const { return MatrixTimes(columns_, crc_a) ^ crc_b; }

uint32_t Crc32Combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) { return Crc32Shift(len_b).Combine(crc_a, crc_b); }

}  // namespace shardcast
