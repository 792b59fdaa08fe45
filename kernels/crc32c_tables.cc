// DeviceCrc32cTables: built from common/crc32c's tables and shift operators.
#include "kernels/crc32c_tables.h"

#include <cstring>
#include <memory>

#include "common/crc32c.h"

namespace shardcast {
namespace {

std::unique_ptr<crc32c_math::Tables> Build() {
  auto t = std::make_unique<crc32c_math::Tables>();
  std::memcpy(t->slice8, Crc32cTables(), sizeof(t->slice8));
  // Combine(x, 0) = shift(x): the operator applied to x alone.
  const Crc32cShift piece(crc32c_math::kPieceBytes);
  for (uint32_t b = 0; b < 4; ++b) {
    for (uint32_t v = 0; v < 256; ++v) t->shift_piece[b][v] = piece.Combine(v << (8 * b), 0);
  }
  for (int j = 0; j < crc32c_math::kMaxLengthBits; ++j) {
    const Crc32cShift pow2(uint64_t{1} << j);
    for (int i = 0; i < 32; ++i) t->shift_pow2[j][i] = pow2.Combine(1u << i, 0);
  }
  return t;
}

}  // namespace

const crc32c_math::Tables& DeviceCrc32cTables() {
  static const crc32c_math::Tables* const tables = Build().release();
  return *tables;
}

}  // namespace shardcast
