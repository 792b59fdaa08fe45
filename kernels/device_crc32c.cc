// CRC32C of device memory: a per-device context (stream, tables, scratch, pinned buffers) reused
// from check to check, and a check of its own when that context is busy.
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

// What a check on one device reuses from the last (a receive is checked in about 1 ms, much of
// it set-up when made afresh): a stream, the tables uploaded once, device scratch and pinned
// host buffers grown as needed. One per device, never destroyed (the process's life); a check
// that finds it busy (another thread's) or abandoned (a timed-out kernel may still use its
// scratch) sets up its own instead.
class CrcContext {
 public:
  static CrcContext* For(int device) {
    static std::mutex mu;
    static std::map<int, CrcContext*>* const contexts = new std::map<int, CrcContext*>();
    std::lock_guard<std::mutex> lock(mu);
    CrcContext*& c = (*contexts)[device];
    if (c == nullptr) c = new CrcContext();
    return c;
  }
  std::mutex& mu() { return mu_; }
  bool abandoned() const { return abandoned_; }
  void Abandon() { abandoned_ = true; }

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

 private:
  static constexpr size_t kTableBytes = (sizeof(crc32c_math::Tables) + 255) / 256 * 256;  // the spans' offset
  std::mutex mu_;
  bool abandoned_ = false;  // guarded by mu_
  cudaStream_t stream_ = nullptr;
  char* scratch_ = nullptr;  // the tables, then per check: spans, piece CRCs, results
  size_t scratch_bytes_ = 0;
  char* host_ = nullptr;     // pinned: the span table, then the results
  size_t host_bytes_ = 0;
};

// A check with a stream and scratch of its own, freed afterwards (CrcContext busy or abandoned).
absl::Status CheckAlone(const std::vector<CrcSpan>& table, uint64_t pieces, std::vector<uint32_t>* crcs,
                        std::chrono::steady_clock::time_point until, std::chrono::milliseconds deadline) {
  const crc32c_math::Tables& tables = DeviceCrc32cTables();
  const size_t table_bytes = sizeof(crc32c_math::Tables);
  const size_t spans_bytes = table.size() * sizeof(CrcSpan);
  const size_t pieces_bytes = pieces * sizeof(uint32_t);
  const size_t out_bytes = crcs->size() * sizeof(uint32_t);
  cudaStream_t stream = nullptr;
  SC_RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate"));
  char* scratch = nullptr;
  absl::Status s = CudaStatus(cudaMallocAsync(reinterpret_cast<void**>(&scratch),
                                              table_bytes + spans_bytes + pieces_bytes + out_bytes, stream),
                              "cudaMallocAsync");
  auto* dev_tables = reinterpret_cast<crc32c_math::Tables*>(scratch);
  auto* dev_spans = reinterpret_cast<CrcSpan*>(scratch + table_bytes);
  auto* dev_pieces = reinterpret_cast<uint32_t*>(scratch + table_bytes + spans_bytes);
  auto* dev_out = reinterpret_cast<uint32_t*>(scratch + table_bytes + spans_bytes + pieces_bytes);
  if (s.ok()) s = CudaStatus(cudaMemcpyAsync(dev_tables, &tables, table_bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpy");
  if (s.ok()) s = CudaStatus(cudaMemcpyAsync(dev_spans, table.data(), spans_bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpy");
  if (s.ok()) {
    s = LaunchSpanCrc32c(dev_spans, static_cast<int>(table.size()), pieces, dev_tables, dev_pieces, dev_out, stream);
  }
  if (s.ok()) s = CudaStatus(cudaMemcpyAsync(crcs->data(), dev_out, out_bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpy");
  if (s.ok()) s = WaitFor(stream, until, deadline);
  if (!absl::IsDeadlineExceeded(s)) {  // after a timeout the kernels may still use them: leak rather than race
    if (scratch != nullptr) cudaFreeAsync(scratch, stream);
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
  }
  return s;
}

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
  CrcContext* context = CrcContext::For(device);
  std::unique_lock<std::mutex> lock(context->mu(), std::try_to_lock);
  if (!lock.owns_lock() || context->abandoned()) {
    if (lock.owns_lock()) lock.unlock();
    SC_RETURN_IF_ERROR(CheckAlone(table, pieces, &crcs, until, deadline));
    return crcs;
  }
  if (!context->Reserve(table.size(), pieces).ok()) {  // e.g. out of memory now: the context stays usable
    lock.unlock();
    SC_RETURN_IF_ERROR(CheckAlone(table, pieces, &crcs, until, deadline));
    return crcs;
  }
  absl::Status s = context->Run(table, pieces, &crcs, until, deadline);
  if (!s.ok()) context->Abandon();  // its stream or scratch may still be in use: never again
  SC_RETURN_IF_ERROR(s);
  return crcs;
}

}  // namespace shardcast
