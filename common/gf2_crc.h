// GF(2) arithmetic shared by the CRC-32 (crc32.h) and CRC32C (crc32c.h) shift operators, after
// zlib's crc32_combine: what appending zero bytes does to a finalized reflected CRC is a linear
// map, kept as 32 columns (the image of each bit).
#ifndef SHARDCAST_COMMON_GF2_CRC_H_
#define SHARDCAST_COMMON_GF2_CRC_H_

#include <cstdint>

namespace shardcast {
namespace gf2_crc {

// m (32 columns) times the bit vector v.
uint32_t MatrixTimes(const uint32_t* m, uint32_t v);

// columns[i]: bit i of a finalized CRC (reflected polynomial `poly`, e.g. 0xEDB88320 for
// CRC-32, 0x82F63B78 for CRC32C) followed by `len` zero bytes (the pre- and post-inversions
// cancel). O(log len) 32x32 matrix products.
void ZeroExtendColumns(uint32_t poly, uint64_t len, uint32_t columns[32]);

}  // namespace gf2_crc
}  // namespace shardcast

#endif  // SHARDCAST_COMMON_GF2_CRC_H_
