// The CUDA shard executor: the same interface and CopyDesc math as the CPU reference executor
// (reshard/executor.h), run by the kernels in strided_copy.cu.
#ifndef SHARDCAST_KERNELS_CUDA_EXECUTOR_H_
#define SHARDCAST_KERNELS_CUDA_EXECUTOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "reshard/executor.h"

namespace shardcast {

// Number of CUDA devices visible (0 when there is no driver or no GPU).
int CudaDeviceCount();
// Unavailable, saying to use --device cpu, when `device` is not a visible CUDA device.
absl::Status RequireCudaDevice(int device);

// Sources and destinations are device pointers on `device`. Run() returns after the copies
// finished (stream synchronized); launch and execution errors come back as Internal.
absl::StatusOr<std::unique_ptr<ShardExecutor>> NewCudaExecutor(int device = 0);

// For host-memory callers (the CLI): copies the sources to the device, runs the CUDA executor,
// and copies the shards back into the host destinations.
absl::StatusOr<std::unique_ptr<ShardExecutor>> NewCudaStagingExecutor(int device = 0);

}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_CUDA_EXECUTOR_H_
