#include "server/cuda_memory_space.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
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
// start. CopyIn hands copies to a copier thread, so the loading thread reads the next batch
// meanwhile; Synchronize waits for the copier (then the source may be reused) and the stream. The
// copier pins two 64 MiB bounce buffers of its own when the space starts (beside the first reads)
// and copies through them, memcpy into one while the other goes up: the driver's own staging of a
// pageable source managed 3.4 GB/s, a bottleneck once the files are in the page cache. Without
// the bounce buffers (pinning failed) it copies from the pageable source directly.
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
    SC_RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"));
    copier_ = std::thread([this] { CopyLoop(); });
    return absl::OkStatus();
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
  static constexpr size_t kBounceBytes = 64u << 20;

  // Pinned bounce buffers and an event each (when the buffer's last copy up has finished).
  struct Bounce {
    void* data[2] = {nullptr, nullptr};
    cudaEvent_t done[2] = {nullptr, nullptr};
    bool ok = false;
  };
  static Bounce PinBounce() {
    Bounce b;
    b.ok = true;
    for (int i = 0; i < 2; ++i) {
      b.ok = b.ok && cudaHostAlloc(&b.data[i], kBounceBytes, cudaHostAllocDefault) == cudaSuccess &&
             cudaEventCreateWithFlags(&b.done[i], cudaEventDisableTiming) == cudaSuccess;
    }
    if (!b.ok) cudaGetLastError();  // fall back to pageable copies; clear the error
    return b;
  }
  static void Unpin(Bounce& b) {
    for (int i = 0; i < 2; ++i) {
      if (b.done[i]) cudaEventDestroy(b.done[i]);
      if (b.data[i]) cudaFreeHost(b.data[i]);
    }
  }
  // One queued copy: through the bounce buffers, alternating, or straight from the source.
  absl::Status CopyUp(const Copy& c, Bounce& b, int* next) {
    if (!b.ok) {
      return CudaStatus(cudaMemcpyAsync(c.dst, c.src, c.n, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync H2D");
    }
    for (size_t off = 0; off < c.n; off += kBounceBytes) {
      const size_t len = std::min(kBounceBytes, c.n - off);
      const int k = *next;
      *next ^= 1;
      SC_RETURN_IF_ERROR(CudaStatus(cudaEventSynchronize(b.done[k]), "cudaEventSynchronize (bounce buffer)"));
      std::memcpy(b.data[k], static_cast<const char*>(c.src) + off, len);
      SC_RETURN_IF_ERROR(CudaStatus(
          cudaMemcpyAsync(static_cast<char*>(c.dst) + off, b.data[k], len, cudaMemcpyHostToDevice, stream_),
          "cudaMemcpyAsync H2D"));
      SC_RETURN_IF_ERROR(CudaStatus(cudaEventRecord(b.done[k], stream_), "cudaEventRecord"));
    }
    return absl::OkStatus();
  }
  // The copier thread: pins its bounce buffers, then each queued copy in order, on the stream;
  // a copy is done with its source once CopyUp returns. The first error is kept for Synchronize.
  void CopyLoop() {
    cudaSetDevice(device_);
    Bounce bounce = PinBounce();
    int next = 0;
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return stop_ || !copies_.empty(); });
      if (copies_.empty()) break;
      const Copy c = copies_.front();
      copies_.pop_front();
      copying_ = true;
      lock.unlock();
      absl::Status s = CopyUp(c, bounce, &next);
      lock.lock();
      copying_ = false;
      if (!s.ok() && copy_error_.ok()) copy_error_ = s;
      cv_.notify_all();
    }
    lock.unlock();
    cudaStreamSynchronize(stream_);  // no copy reads a bounce buffer any more
    Unpin(bounce);
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
