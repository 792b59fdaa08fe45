#include "kernels/device_crc32c.h"

#include <cuda_runtime.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/status_macros.h"
#include "kernels/crc32c_kernel.h"
#include "kernels/cuda_status.h"

namespace shardcast {
namespace {

constexpr uint64_t kPieceBytes = 8192;

}  // namespace

absl::StatusOr<std::vector<uint32_t>> DeviceCrc32c(int device, const std::vector<DeviceSpan>& spans,
                                                   std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  std::vector<CrcPiece> pieces;
  std::vector<size_t> first_piece;  // per span
  for (const DeviceSpan& s : spans) {
    first_piece.push_back(pieces.size());
    for (uint64_t off = 0; off < s.nbytes; off += kPieceBytes) {
      pieces.push_back(CrcPiece{static_cast<const char*>(s.data) + off, std::min(kPieceBytes, s.nbytes - off)});
    }
  }
  std::vector<uint32_t> crcs(pieces.size());
  if (!pieces.empty()) {
    SC_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
    const size_t table_bytes = 8 * 256 * sizeof(uint32_t);
    const size_t piece_bytes = pieces.size() * sizeof(CrcPiece);
    const size_t out_bytes = pieces.size() * sizeof(uint32_t);
    char* scratch = nullptr;
    SC_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&scratch, table_bytes + piece_bytes + out_bytes), "cudaMalloc"));
    cudaStream_t stream = nullptr;
    absl::Status s = CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    auto* tables = reinterpret_cast<uint32_t*>(scratch);
    auto* dev_pieces = reinterpret_cast<CrcPiece*>(scratch + table_bytes);
    auto* out = reinterpret_cast<uint32_t*>(scratch + table_bytes + piece_bytes);
    if (s.ok()) s = CudaStatus(cudaMemcpyAsync(tables, Crc32cTables(), table_bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpy");
    if (s.ok()) s = CudaStatus(cudaMemcpyAsync(dev_pieces, pieces.data(), piece_bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpy");
    if (s.ok()) s = LaunchCrc32cPieces(dev_pieces, static_cast<int>(pieces.size()), tables, out, stream);
    if (s.ok()) s = CudaStatus(cudaMemcpyAsync(crcs.data(), out, out_bytes, cudaMemcpyDeviceToHost, stream), "cudaMemcpy");
    // Poll with a deadline rather than block.
    while (s.ok()) {
      const cudaError_t q = cudaStreamQuery(stream);
      if (q == cudaSuccess) break;
      if (q != cudaErrorNotReady) {
        s = CudaStatus(q, "CRC32C kernel");
      } else if (std::chrono::steady_clock::now() > until) {
        s = absl::DeadlineExceededError(absl::StrCat("the CRC32C check did not finish within ", deadline.count(), " ms"));
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(20));
      }
    }
    if (!absl::IsDeadlineExceeded(s)) {  // after a timeout the kernel may still use them: leak rather than race
      if (stream != nullptr) {
        cudaStreamSynchronize(stream);
        cudaStreamDestroy(stream);
      }
      cudaFree(scratch);
    }
    SC_RETURN_IF_ERROR(s);
  }
  // Join each span's pieces: full pieces share one operator; the last may be shorter.
  const Crc32cShift full(kPieceBytes);
  std::vector<uint32_t> result(spans.size(), 0);
  for (size_t i = 0; i < spans.size(); ++i) {
    const size_t begin = first_piece[i];
    const size_t end = i + 1 < spans.size() ? first_piece[i + 1] : pieces.size();
    if (begin == end) continue;  // empty span: CRC 0
    uint32_t crc = crcs[begin];
    for (size_t k = begin + 1; k < end; ++k) {
      crc = pieces[k].nbytes == kPieceBytes ? full.Combine(crc, crcs[k]) : Crc32cCombine(crc, crcs[k], pieces[k].nbytes);
    }
    result[i] = crc;
  }
  return result;
}

}  // namespace shardcast
