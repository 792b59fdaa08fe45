#include "server/cuda_memory_space.h"

#include <cuda_runtime.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda_device.h"
#include "kernels/cuda_status.h"
#include "kernels/device_crc32c.h"
#include "reshard/cuda_executor.h"

namespace shardcast {
namespace {

// Staging is pageable host memory: pinning the two 256 MiB staging buffers (cudaHostAlloc) took
// 230-280 ms on an H200 host, a quarter of the checkpoint's cold read, before the first read could
// start. A copy from pageable memory holds its caller until the driver has staged the source, so
// CopyIn hands copies to a copier thread: the loading thread reads the next batch meanwhile, and
// Synchronize waits for the copier (then the source may be reused) and the stream.
class CudaMemorySpace : public MemorySpace {
 public:
  explicit CudaMemorySpace(int device) : device_(device) {}
  ~CudaMemorySpace() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (copier_.joinable()) copier_.join();
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
    void* p = std::malloc(n ? n : 1);
    if (p == nullptr) return absl::ResourceExhaustedError(absl::StrCat("no ", n, " bytes of host memory for staging"));
    return Buffer(p, n, std::free);
  }
  absl::Status CopyIn(void* dst, const void* src, size_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!copier_.joinable()) copier_ = std::thread([this] { CopyLoop(); });
    copies_.push_back(Copy{dst, src, n});
    cv_.notify_all();
    return absl::OkStatus();
  }
  absl::Status CopyOut(void* dst, const void* src, size_t n) override {
    SC_RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync D2H"));
    return Synchronize();
  }
  absl::Status Synchronize() override {
    absl::Status copied;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return copies_.empty() && !copying_; });
      copied = copy_error_;
      copy_error_ = absl::OkStatus();
    }
    absl::Status synced = CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    return copied.ok() ? synced : copied;
  }
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
  struct Copy {
    void* dst;
    const void* src;
    size_t n;
  };
  // The copier thread: each queued copy in order, on the stream; returns once each source has
  // been staged by the driver. The first error is kept for Synchronize.
  void CopyLoop() {
    cudaSetDevice(device_);
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || !copies_.empty(); });
      if (copies_.empty()) return;
      const Copy c = copies_.front();
      copies_.pop_front();
      copying_ = true;
      lock.unlock();
      absl::Status s = CudaStatus(cudaMemcpyAsync(c.dst, c.src, c.n, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync H2D");
      lock.lock();
      copying_ = false;
      if (!s.ok() && copy_error_.ok()) copy_error_ = s;
      cv_.notify_all();
    }
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Copy> copies_;
  bool copying_ = false, stop_ = false;
  absl::Status copy_error_;
  std::thread copier_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<MemorySpace>> NewCudaMemorySpace(int device) {
  SC_RETURN_IF_ERROR(RequireCudaDevice(device));
  auto m = std::make_unique<CudaMemorySpace>(device);
  SC_RETURN_IF_ERROR(m->Init());
  return std::unique_ptr<MemorySpace>(std::move(m));
}

}  // namespace shardcast
