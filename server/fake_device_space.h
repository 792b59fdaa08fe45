// FakeDeviceSpace (tests only): host memory that says it is a device, so that the loader takes its
// device paths (staging pipeline, whole tensors copied into a request's allocation) without a GPU.
// Counts what it is asked.
#ifndef SHARDCAST_SERVER_FAKE_DEVICE_SPACE_H_
#define SHARDCAST_SERVER_FAKE_DEVICE_SPACE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/memory_space.h"

namespace shardcast {

class FakeDeviceSpace : public MemorySpace {
 public:
  std::string name() const override { return "fake-device"; }
  bool is_device() const override { return true; }
  absl::StatusOr<Buffer> Allocate(size_t n) override {
    ++allocations;
    if (refuse_from > 0 && n >= refuse_from) return absl::ResourceExhaustedError("fake device: out of memory");
    return host_->Allocate(n);
  }
  absl::StatusOr<Buffer> AllocateStaging(size_t n) override {
    staging_sizes.push_back(n);
    return host_->AllocateStaging(n);
  }
  absl::Status CopyIn(void* dst, const void* src, size_t n) override {
    ++copies_in;
    return host_->CopyIn(dst, src, n);
  }
  absl::Status CopyOut(void* dst, const void* src, size_t n) override { return host_->CopyOut(dst, src, n); }
  absl::Status Synchronize() override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<uint32_t>> Checksums(const std::vector<std::pair<const void*, uint64_t>>& s) override {
    return host_->Checksums(s);
  }
  absl::StatusOr<uint64_t> FreeBytes() override { return host_->FreeBytes(); }
  absl::StatusOr<std::unique_ptr<ShardExecutor>> NewExecutor() override { return host_->NewExecutor(); }

  int allocations = 0, copies_in = 0;
  size_t refuse_from = 0;  // Allocate fails from this size on (0: never)
  std::vector<size_t> staging_sizes;

 private:
  std::unique_ptr<MemorySpace> host_ = NewHostMemorySpace();
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_FAKE_DEVICE_SPACE_H_
