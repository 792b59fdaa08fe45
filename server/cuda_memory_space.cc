#include "server/cuda_memory_space.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda_device.h"
#include "kernels/cuda_status.h"
#include "kernels/device_crc32c.h"
#include "reshard/cuda_executor.h"

namespace shardcast {
namespace {

class CudaMemorySpace : public MemorySpace {
 public:
  explicit CudaMemorySpace(int device) : device_(device) {}
  ~CudaMemorySpace() override {
    if (stream_) cudaStreamDestroy(stream_);
  }
  absl::Status Init() {
    SC_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
    return CudaStatus(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  std::string name() const override { return absl::StrCat("cuda:", device_); }
  bool is_device() const override { return true; }
  absl::StatusOr<Buffer> Allocate(size_t n) override {
    cudaSetDevice(device_);
    void* p = nullptr;
    SC_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&p, n ? n : 1), "cudaMalloc"));
    return Buffer(p, n, [](void* data) { cudaFree(data); });
  }
  absl::StatusOr<Buffer> AllocateStaging(size_t n) override {
    cudaSetDevice(device_);
    void* p = nullptr;
    SC_RETURN_IF_ERROR(CudaStatus(cudaHostAlloc(&p, n ? n : 1, cudaHostAllocDefault), "cudaHostAlloc"));
    return Buffer(p, n, [](void* data) { cudaFreeHost(data); });
  }
  absl::Status CopyIn(void* dst, const void* src, size_t n) override {
    return CudaStatus(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync H2D");
  }
  absl::Status CopyOut(void* dst, const void* src, size_t n) override {
    SC_RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync D2H"));
    return Synchronize();
  }
  absl::Status Synchronize() override { return CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }
  absl::StatusOr<std::vector<uint32_t>> Checksums(const std::vector<std::pair<const void*, uint64_t>>& spans) override {
    std::vector<DeviceSpan> d;
    for (const auto& [p, n] : spans) d.push_back(DeviceSpan{p, n});
    return DeviceCrc32c(device_, d, std::chrono::minutes(5));
  }
  absl::StatusOr<uint64_t> FreeBytes() override {
    SC_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device_), "cudaSetDevice"));
    size_t free = 0, total = 0;
    SC_RETURN_IF_ERROR(CudaStatus(cudaMemGetInfo(&free, &total), "cudaMemGetInfo"));
    return static_cast<uint64_t>(free);
  }
  absl::StatusOr<std::unique_ptr<ShardExecutor>> NewExecutor() override { return NewCudaExecutor(device_); }

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MemorySpace>> NewCudaMemorySpace(int device) {
  SC_RETURN_IF_ERROR(RequireCudaDevice(device));
  auto m = std::make_unique<CudaMemorySpace>(device);
  SC_RETURN_IF_ERROR(m->Init());
  return std::unique_ptr<MemorySpace>(std::move(m));
}

}  // namespace shardcast
