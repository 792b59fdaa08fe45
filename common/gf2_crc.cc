#include "common/gf2_crc.h"

namespace shardcast {
namespace gf2_crc {
namespace {

void MatrixSquare(uint32_t* square, const uint32_t* m) {
  for (int i = 0; i < 32; ++i) square[i] = MatrixTimes(m, m[i]);
}

}  // namespace

uint32_t MatrixTimes(const uint32_t* m, uint32_t v) {
  uint32_t sum = 0;
  for (int i = 0; v != 0; ++i, v >>= 1) {
    if (v & 1) sum ^= m[i];
  }
  return sum;
}

void ZeroExtendColumns(uint32_t poly, uint64_t len, uint32_t columns[32]) {
  for (int i = 0; i < 32; ++i) columns[i] = 1u << i;  // identity: no bytes appended
  if (len == 0) return;
  uint32_t even[32], odd[32];
  odd[0] = poly;  // one zero bit
  for (int i = 1; i < 32; ++i) odd[i] = 1u << (i - 1);
  MatrixSquare(even, odd);  // two zero bits
  MatrixSquare(odd, even);  // four zero bits
  auto apply = [&](const uint32_t* op) {
    for (int i = 0; i < 32; ++i) columns[i] = MatrixTimes(op, columns[i]);
  };
  do {
    MatrixSquare(even, odd);  // one zero byte, then 4, 16, ...
    if (len & 1) apply(even);
    len >>= 1;
    if (len == 0) break;
    MatrixSquare(odd, even);
    if (len & 1) apply(odd);
    len >>= 1;
  } while (len != 0);
}

}  // namespace gf2_crc
}  // namespace shardcast
