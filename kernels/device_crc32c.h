// CRC32C of buffers in GPU memory, computed on that GPU: the buffers are cut into 4 KiB pieces,
// one thread each, and the pieces' CRCs joined per buffer on the GPU too (kernels/crc32c_kernel,
// kernels/crc32c_math.h); the host uploads a span table and reads one CRC per buffer back. Equals
// Crc32c() of the same bytes; a client checks what it received without copying it back to the host.
#ifndef SHARDCAST_KERNELS_DEVICE_CRC32C_H_
#define SHARDCAST_KERNELS_DEVICE_CRC32C_H_

#include <chrono>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace shardcast {

struct DeviceSpan {
  const void* data;  // device memory on the given device
  uint64_t nbytes;
};

// One CRC per span. Waits for the GPU at most `deadline` (DeadlineExceeded after).
absl::StatusOr<std::vector<uint32_t>> DeviceCrc32c(int device, const std::vector<DeviceSpan>& spans,
                                                   std::chrono::milliseconds deadline);

}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_DEVICE_CRC32C_H_
