// MemorySpace: where a loader rank keeps tensors and shards (host memory, or a GPU), and how
// bytes get in and out; Buffer, the owning handle of its allocations; PackSlab, the layout of
// several buffers in one allocation. The CUDA implementation lives in
// server/cuda_memory_space.h.
#ifndef SHARDCAST_SERVER_MEMORY_SPACE_H_
#define SHARDCAST_SERVER_MEMORY_SPACE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "reshard/executor.h"

namespace shardcast {

// An allocation of a memory space: move-only, freed by its destructor. The free function is a
// plain function of the pointer (std::free, cudaFree, cudaFreeHost), so a Buffer does not depend
// on the MemorySpace object that made it staying alive.
class Buffer {
 public:
  using FreeFunction = void (*)(void* data);
  Buffer() = default;
  Buffer(void* data, size_t size, FreeFunction free_function)
      : data_(data), size_(size), free_(free_function) {}
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      Reset();
      std::swap(data_, other.data_);
      std::swap(size_, other.size_);
      std::swap(free_, other.free_);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { Reset(); }

  void* data() const { return data_; }
  char* bytes() const { return static_cast<char*>(data_); }
  size_t size() const { return size_; }
  explicit operator bool() const { return data_ != nullptr; }
  // Frees the memory now (no-op when empty).
  void Reset() {
    if (data_ != nullptr && free_ != nullptr) free_(data_);
    data_ = nullptr;
    size_ = 0;
    free_ = nullptr;
  }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  FreeFunction free_ = nullptr;
};

// Offsets of `sizes` packed into one allocation, each aligned to kSlabAlign bytes (what
// cudaMalloc gives and every vectorized copy wants); returns the total.
constexpr uint64_t kSlabAlign = 256;
uint64_t PackSlab(const std::vector<uint64_t>& sizes, std::vector<uint64_t>* offsets);

class MemorySpace {
 public:
  virtual ~MemorySpace() = default;
  virtual std::string name() const = 0;  // "cpu" or "cuda:N"
  virtual bool is_device() const = 0;

  // Memory for tensors and shards. ResourceExhausted when it cannot be had.
  virtual absl::StatusOr<Buffer> Allocate(size_t n) = 0;

  // Host staging memory for loading (pageable; a GPU space copies it up on a thread of its own).
  virtual absl::StatusOr<Buffer> AllocateStaging(size_t n) = 0;

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
