#include "kernels/device_crc32c.h"

#include <cuda_runtime.h>

#include <thread>

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
  const crc32c_math::Tables& tables = DeviceCrc32cTables();
  SC_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
  // One scratch allocation: the tables, the span table, the pieces' raw CRCs, the results.
  const size_t table_bytes = sizeof(crc32c_math::Tables);
  const size_t spans_bytes = table.size() * sizeof(CrcSpan);
  const size_t pieces_bytes = pieces * sizeof(uint32_t);
  const size_t out_bytes = crcs.size() * sizeof(uint32_t);
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
  if (s.ok()) s = CudaStatus(cudaMemcpyAsync(crcs.data(), dev_out, out_bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpy");
  if (s.ok()) s = WaitFor(stream, until, deadline);
  if (!absl::IsDeadlineExceeded(s)) {  // after a timeout the kernels may still use them: leak rather than race
    if (scratch != nullptr) cudaFreeAsync(scratch, stream);
    cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
  }
  SC_RETURN_IF_ERROR(s);
  return crcs;
}

}  // namespace shardcast
