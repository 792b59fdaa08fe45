// Which CUDA devices this process can use: the count (0 without a driver or GPU) and a check that
// names the fix (`--device cpu`) when a requested device is missing.
#ifndef SHARDCAST_KERNELS_CUDA_DEVICE_H_
#define SHARDCAST_KERNELS_CUDA_DEVICE_H_

#include "absl/status/status.h"

namespace shardcast {

// Number of CUDA devices visible (0 when there is no driver or no GPU).
int CudaDeviceCount();
// Unavailable, saying to use --device cpu, when `device` is not a visible CUDA device.
absl::Status RequireCudaDevice(int device);

}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_CUDA_DEVICE_H_
