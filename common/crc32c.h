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

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_CRC32C_H_
