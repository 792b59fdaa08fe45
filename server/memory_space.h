// MemorySpace: where a loader rank keeps tensors and shards (host memory, or a GPU), and how
// bytes get in and out. The CUDA implementation lives in kernels/cuda_memory_space.h.
#ifndef SHARDCAST_SERVER_MEMORY_SPACE_H_
#define SHARDCAST_SERVER_MEMORY_SPACE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "reshard/executor.h"

namespace shardcast {

class MemorySpace {
 public:
  virtual ~MemorySpace() = default;
  virtual std::string name() const = 0;  // "cpu" or "cuda:N"
  virtual bool is_device() const = 0;

  // Memory for tensors and shards. ResourceExhausted when it cannot be had.
  virtual absl::StatusOr<void*> Allocate(size_t n) = 0;
  virtual void Free(void* p) = 0;

  // Host staging memory for loading (pinned on a GPU space). Freed with FreeStaging.
  virtual absl::StatusOr<void*> AllocateStaging(size_t n) = 0;
  virtual void FreeStaging(void* p) = 0;

  // Copies host bytes in; may run asynchronously until Synchronize(). The source must stay
  // valid until then.
  virtual absl::Status CopyIn(void* dst, const void* host_src, size_t n) = 0;
  // Copies bytes out to the host, synchronously.
  virtual absl::Status CopyOut(void* host_dst, const void* src, size_t n) = 0;
  virtual absl::Status Synchronize() = 0;

  // CRC32C (common/crc32c) of each span of this space's memory, computed where it lives.
  virtual absl::StatusOr<std::vector<uint32_t>> Checksums(const std::vector<std::pair<const void*, uint64_t>>& spans) = 0;

  // Bytes this space could still allocate (host: MemAvailable of /proc/meminfo; GPU: the free
  // bytes of cudaMemGetInfo): the basis of the default --memory-budget.
  virtual absl::StatusOr<uint64_t> FreeBytes() = 0;

  // An executor whose sources and destinations live in this space.
  virtual absl::StatusOr<std::unique_ptr<ShardExecutor>> NewExecutor() = 0;
};

std::unique_ptr<MemorySpace> NewHostMemorySpace();

// MemAvailable of a /proc/meminfo text, in bytes. NotFound when the line is missing.
absl::StatusOr<uint64_t> ParseMemAvailable(const std::string& meminfo);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_MEMORY_SPACE_H_
