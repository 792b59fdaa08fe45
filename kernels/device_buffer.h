// Small device-memory helpers for host code that receives into GPU buffers (the CLI's fetch).
#ifndef SHARDCAST_KERNELS_DEVICE_BUFFER_H_
#define SHARDCAST_KERNELS_DEVICE_BUFFER_H_

#include <cstddef>

#include "absl/status/statusor.h"

namespace shardcast {

absl::StatusOr<void*> DeviceAlloc(size_t n, int device);
void DeviceFree(void* p);
absl::Status CopyDeviceToHost(void* host, const void* device_ptr, size_t n);

}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_DEVICE_BUFFER_H_
