#include "common/crc32.h"

#include <libdeflate.h>

#include "common/gf2_crc.h"

namespace shardcast {

uint32_t Crc32(const void* data, size_t n, uint32_t crc) { return libdeflate_crc32(crc, data, n); }

Crc32Shift::Crc32Shift(uint64_t len) {
  gf2_crc::ZeroExtendColumns(0xEDB88320u, len, columns_);
}

uint32_t Crc32Shift::Combine(uint32_t crc_a, uint32_t crc_b) const { return gf2_crc::MatrixTimes(columns_, crc_a) ^ crc_b; }

uint32_t Crc32Combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) { return Crc32Shift(len_b).Combine(crc_a, crc_b); }

}  // namespace shardcast
