// The GPU MemorySpace of a loader rank: device memory for tensors and shards, pinned host memory
// for staging, copies on one stream (so a copy in overlaps the next read into the other pinned
// buffer), and the CUDA executor. It lives in server/ (it implements server/memory_space.h) in
// a target tagged "cuda", on top of kernels/.
#ifndef SHARDCAST_SERVER_CUDA_MEMORY_SPACE_H_
#define SHARDCAST_SERVER_CUDA_MEMORY_SPACE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "server/memory_space.h"

namespace shardcast {

// Unavailable (naming the device count) when `device` does not exist.
absl::StatusOr<std::unique_ptr<MemorySpace>> NewCudaMemorySpace(int device);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_CUDA_MEMORY_SPACE_H_
