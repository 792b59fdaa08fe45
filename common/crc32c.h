// CRC32C (Castagnoli), as iSCSI/ext4/gRPC use it: hardware (SSE4.2) when the CPU has it, a
// slicing-by-8 table otherwise. Debian 12 packages no CRC32C library, so it lives here.
#ifndef SHARDCAST_COMMON_CRC32C_H_
#define SHARDCAST_COMMON_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace shardcast {

// Extends `crc` (0 to start) over n bytes: Crc32c(b, Crc32c(a)) == Crc32c(a + b).
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

// The portable path, exposed for tests.
uint32_t Crc32cPortable(const void* data, size_t n, uint32_t crc = 0);

// The slicing-by-8 tables, [8][256] row-major (for the GPU kernel, kernels/device_crc32c).
const uint32_t* Crc32cTables();

// What appending `len` bytes does to a CRC, as a linear map over GF(2): with it, CRCs of pieces
// computed in parallel join into the CRC of the whole,
//   Crc32cShift(b.size()).Combine(Crc32c(a), Crc32c(b)) == Crc32c(a + b).
// Building one costs O(log len) 32x32 matrix products; Combine is 32 XORs.
class Crc32cShift {
 public:
  explicit Crc32cShift(uint64_t len);
  uint32_t Combine(uint32_t crc_a, uint32_t crc_b) const;

 private:
  uint32_t columns_[32];  // the image of each bit of crc_a
};

// Crc32cShift(len_b).Combine(crc_a, crc_b), for one-off joins.
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_CRC32C_H_
