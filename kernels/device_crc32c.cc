// CRC32C of device memory: a per-device context (stream, tables, scratch, pinned buffers) reused
// from check to check, and a context of the call's own when that one is busy.
#include "kernels/device_crc32c.h"

#include <cuda_runtime.h>

#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/crc32c_kernel.h"
#include "kernels/crc32c_tables.h"
#include "kernels/cuda_status.h"

namespace shardcast {
namespace {

// Waits for `stream` until `until`, polling (a frozen GPU gives DeadlineExceeded, not a hang).
absl::Status WaitFor(cudaStream_t stream, std::chrono::steady_clock::time_point until,
                     std::chrono::milliseconds deadline) {
  while (true) {
    const cudaError_t q = cudaStreamQuery(stream);
    if (q == cudaSuccess) return absl::OkStatus();
    if (q != cudaErrorNotReady) return CudaStatus(q, "CRC32C kernel");
    if (std::chrono::steady_clock::now() > until) {
      return absl::DeadlineExceededError(absl::StrCat("the CRC32C check did not finish within ", deadline.count(), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(10));
  }
}

// What a check needs on one device: a stream, the tables (uploaded once), device scratch and
// pinned host buffers, grown as needed. Each device has a shared one, never destroyed, that
// checks reuse (a receive is checked in about 1 ms, much of it set-up when made afresh); a check
// that finds it busy (another thread's) or abandoned uses one of its own for the call.
class CrcContext {
 public:
  CrcContext() = default;
  CrcContext(const CrcContext&) = delete;
  CrcContext& operator=(const CrcContext&) = delete;
  // Frees what it holds, unless abandoned: a timed-out kernel may still use it (leaked instead).
  ~CrcContext() {
    if (abandoned_) return;
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    if (scratch_ != nullptr) cudaFree(scratch_);
    if (host_ != nullptr) cudaFreeHost(host_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  static CrcContext* Shared(int device) {
    static std::mutex mu;
    static std::map<int, CrcContext*>* const contexts = new std::map<int, CrcContext*>();
    std::lock_guard<std::mutex> lock(mu);
    CrcContext*& c = (*contexts)[device];
    if (c == nullptr) c = new CrcContext();
    return c;
  }
  // The CRCs of `table` (`pieces` pieces in all) into `crcs`. A failed run abandons the context.
  absl::Status Check(const std::vector<CrcSpan>& table, uint64_t pieces, std::vector<uint32_t>* crcs,
                     std::chrono::steady_clock::time_point until, std::chrono::milliseconds deadline) {
    SC_RETURN_IF_ERROR(Reserve(table.size(), pieces));  // e.g. out of memory now: the context stays usable
    absl::Status s = Run(table, pieces, crcs, until, deadline);
    if (!s.ok()) abandoned_ = true;
    return s;
  }
  std::mutex& mu() { return mu_; }
  bool abandoned() const { return abandoned_; }

 private:
  // Sets up what a check of `spans` (with `pieces` pieces) needs; Run() then launches it.
  absl::Status Reserve(size_t span_count, uint64_t pieces) {
    if (stream_ == nullptr) {
      SC_RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate"));
    }
    const size_t need = kTableBytes + span_count * sizeof(CrcSpan) + pieces * sizeof(uint32_t) + span_count * 4;
    if (need > scratch_bytes_) {
      // Forgotten before anything can fail: a failed step leaves no scratch (leaked, not reused).
      char* old = std::exchange(scratch_, nullptr);
      scratch_bytes_ = 0;
      if (old != nullptr) SC_RETURN_IF_ERROR(CudaStatus(cudaFree(old), "cudaFree"));
      char* fresh = nullptr;
      SC_RETURN_IF_ERROR(CudaStatus(cudaMalloc(reinterpret_cast<void**>(&fresh), need), "cudaMalloc"));
      // On the context's stream: a synchronous cudaMemcpy from pageable memory may return before
      // the bytes arrive, and nothing would order this non-blocking stream after it.
      SC_RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(fresh, &DeviceCrc32cTables(), sizeof(crc32c_math::Tables),
                                                    cudaMemcpyHostToDevice, stream_),
                                    "cudaMemcpy"));
      scratch_ = fresh;
      scratch_bytes_ = need;  // only once the tables are on their way
    }
    const size_t host_need = span_count * (sizeof(CrcSpan) + sizeof(uint32_t));
    if (host_need > host_bytes_) {
      char* old = std::exchange(host_, nullptr);
      host_bytes_ = 0;
      if (old != nullptr) SC_RETURN_IF_ERROR(CudaStatus(cudaFreeHost(old), "cudaFreeHost"));
      char* fresh = nullptr;
      SC_RETURN_IF_ERROR(CudaStatus(cudaHostAlloc(reinterpret_cast<void**>(&fresh), host_need, cudaHostAllocDefault),
                                    "cudaHostAlloc"));
      host_ = fresh;
      host_bytes_ = host_need;
    }
    return absl::OkStatus();
  }

  // Launches the check of `table` (after Reserve) and waits for it; the CRCs into `crcs`.
  absl::Status Run(const std::vector<CrcSpan>& table, uint64_t pieces, std::vector<uint32_t>* crcs,
                   std::chrono::steady_clock::time_point until, std::chrono::milliseconds deadline) {
    const size_t spans_bytes = table.size() * sizeof(CrcSpan);
    auto* dev_tables = reinterpret_cast<crc32c_math::Tables*>(scratch_);
    auto* dev_spans = reinterpret_cast<CrcSpan*>(scratch_ + kTableBytes);
    auto* dev_pieces = reinterpret_cast<uint32_t*>(scratch_ + kTableBytes + spans_bytes);
    auto* dev_out = reinterpret_cast<uint32_t*>(scratch_ + kTableBytes + spans_bytes + pieces * sizeof(uint32_t));
    auto* host_out = reinterpret_cast<uint32_t*>(host_ + spans_bytes);
    std::memcpy(host_, table.data(), spans_bytes);
    SC_RETURN_IF_ERROR(
        CudaStatus(cudaMemcpyAsync(dev_spans, host_, spans_bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpy"));
    SC_RETURN_IF_ERROR(LaunchSpanCrc32c(dev_spans, static_cast<int>(table.size()), pieces, dev_tables, dev_pieces,
                                        dev_out, stream_));
    SC_RETURN_IF_ERROR(CudaStatus(
        cudaMemcpyAsync(host_out, dev_out, table.size() * sizeof(uint32_t), cudaMemcpyDeviceToHost, stream_),
        "cudaMemcpy"));
    SC_RETURN_IF_ERROR(WaitFor(stream_, until, deadline));
    std::memcpy(crcs->data(), host_out, table.size() * sizeof(uint32_t));
    return absl::OkStatus();
  }

  static constexpr size_t kTableBytes = (sizeof(crc32c_math::Tables) + 255) / 256 * 256;  // the spans' offset
  std::mutex mu_;
  bool abandoned_ = false;  // guarded by mu_
  cudaStream_t stream_ = nullptr;
  char* scratch_ = nullptr;  // the tables, then per check: spans, piece CRCs, results
  size_t scratch_bytes_ = 0;
  char* host_ = nullptr;     // pinned: the span table, then the results
  size_t host_bytes_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<uint32_t>> DeviceCrc32c(int device, const std::vector<DeviceSpan>& spans,
                                                   std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  std::vector<uint32_t> crcs(spans.size(), 0);
  if (spans.empty()) return crcs;
  std::vector<CrcSpan> table;
  uint64_t pieces = 0;
  for (const DeviceSpan& s : spans) {
    table.push_back(CrcSpan{s.data, s.nbytes, pieces});
    pieces += crc32c_math::PieceCount(s.nbytes);
  }
  SC_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
  CrcContext* shared = CrcContext::Shared(device);
  std::unique_lock<std::mutex> lock(shared->mu(), std::try_to_lock);
  if (lock.owns_lock() && !shared->abandoned()) {
    SC_RETURN_IF_ERROR(shared->Check(table, pieces, &crcs, until, deadline));
  } else {
    if (lock.owns_lock()) lock.unlock();
    CrcContext own;
    SC_RETURN_IF_ERROR(own.Check(table, pieces, &crcs, until, deadline));
  }
  return crcs;
}

}  // namespace shardcast
