// Host launcher for the CRC32C piece kernel. No CUDA types: `stream` is a cudaStream_t passed as
// void* (nullptr: the default stream). kernels/device_crc32c.h is the API to use.
#ifndef SHARDCAST_KERNELS_CRC32C_KERNEL_H_
#define SHARDCAST_KERNELS_CRC32C_KERNEL_H_

#include <cstdint>

#include "absl/status/status.h"

namespace shardcast {

// One piece of device memory whose CRC32C one thread computes.
struct CrcPiece {
  const void* data;
  uint64_t nbytes;
};

// Enqueues out[i] = Crc32c(pieces[i]) for i < count. `pieces`, `tables` (common/crc32c's
// Crc32cTables(), 8x256) and `out` are device pointers. Does not synchronize.
absl::Status LaunchCrc32cPieces(const CrcPiece* pieces, int count, const uint32_t* tables, uint32_t* out, void* stream);

}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_CRC32C_KERNEL_H_
