// The CUDA shard executor: the same interface and CopyDesc math as the CPU reference executor
// (executor.h, beside it), run by the kernels of kernels/strided_copy.cu. It lives here, above
// kernels/, because it implements reshard's ShardExecutor interface.
#ifndef SHARDCAST_RESHARD_CUDA_EXECUTOR_H_
#define SHARDCAST_RESHARD_CUDA_EXECUTOR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/cuda_device.h"  // RequireCudaDevice, for callers
#include "reshard/executor.h"

namespace shardcast {

// Sources and destinations are device pointers on `device`. Run() returns after the copies
// finished (stream synchronized); launch and execution errors come back as Internal.
absl::StatusOr<std::unique_ptr<ShardExecutor>> NewCudaExecutor(int device = 0);

// For host-memory callers (the CLI): copies the sources to the device, runs the CUDA executor,
// and copies the shards back into the host destinations.
absl::StatusOr<std::unique_ptr<ShardExecutor>> NewCudaStagingExecutor(int device = 0);

}  // namespace shardcast

#endif  // SHARDCAST_RESHARD_CUDA_EXECUTOR_H_
