// CRC32C of spans on the GPU, in two kernels (kernels/crc32c_math.h: NOTE [CRC32C of a span in
// pieces, all on the GPU]): one thread per 4 KiB piece (slicing-by-8 from shared memory), then one
// thread per span joining its pieces (Horner with shift_P) and finishing the CRC.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kernels/crc32c_kernel.h"
#include "kernels/crc32c_math.h"

namespace shardcast {
namespace {

using crc32c_math::Tables;

constexpr int kPieceThreads = 256;
constexpr int kSpanThreads = 128;

// The span holding global piece g: the last span whose first_piece <= g (spans with no pieces
// share their successor's first_piece and are skipped by the search).
__device__ int FindSpan(const CrcSpan* spans, int span_count, uint64_t g) {
  int lo = 0, hi = span_count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (spans[mid].first_piece <= g) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

__global__ void PieceCrcsKernel(const CrcSpan* __restrict__ spans, int span_count, uint64_t piece_count,
                                const Tables* __restrict__ tables, uint32_t* __restrict__ piece_crcs) {
  __shared__ uint32_t t[8][256];
  for (int i = threadIdx.x; i < 8 * 256; i += blockDim.x) (&t[0][0])[i] = (&tables->slice8[0][0])[i];
  __syncthreads();
  const uint64_t g = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= piece_count) return;
  const CrcSpan s = spans[FindSpan(spans, span_count, g)];
  uint64_t start = 0, len = 0;
  crc32c_math::PieceRange(s.nbytes, g - s.first_piece, &start, &len);
  piece_crcs[g] = crc32c_math::RawExtend(t, 0, static_cast<const uint8_t*>(s.data) + start, len);
}

__global__ void JoinSpansKernel(const CrcSpan* __restrict__ spans, int span_count, const Tables* __restrict__ tables,
                                const uint32_t* __restrict__ piece_crcs, uint32_t* __restrict__ out) {
  __shared__ uint32_t shift[4][256];
  for (int i = threadIdx.x; i < 4 * 256; i += blockDim.x) (&shift[0][0])[i] = (&tables->shift_piece[0][0])[i];
  __syncthreads();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= span_count) return;
  const CrcSpan s = spans[i];
  const uint64_t count = crc32c_math::PieceCount(s.nbytes);
  uint32_t r = 0;
  for (uint64_t k = 0; k < count; ++k) r = crc32c_math::ShiftPiece(shift, r) ^ piece_crcs[s.first_piece + k];
  out[i] = crc32c_math::FinishSpan(*tables, r, s.nbytes);
}

absl::Status LaunchError(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return absl::InternalError(absl::StrCat(what, " launch: ", cudaGetErrorString(err)));
  return absl::OkStatus();
}

}  // namespace

absl::Status LaunchSpanCrc32c(const CrcSpan* spans, int span_count, uint64_t piece_count, const Tables* tables,
                              uint32_t* piece_crcs, uint32_t* out, void* stream) {
  if (span_count <= 0) return absl::OkStatus();
  auto st = static_cast<cudaStream_t>(stream);
  if (piece_count > 0) {
    const uint64_t blocks = (piece_count + kPieceThreads - 1) / kPieceThreads;
    PieceCrcsKernel<<<static_cast<unsigned>(blocks), kPieceThreads, 0, st>>>(spans, span_count, piece_count, tables,
                                                                            piece_crcs);
    if (absl::Status s = LaunchError("CRC32C piece kernel"); !s.ok()) return s;
  }
  JoinSpansKernel<<<(span_count + kSpanThreads - 1) / kSpanThreads, kSpanThreads, 0, st>>>(spans, span_count, tables,
                                                                                         piece_crcs, out);
  return LaunchError("CRC32C join kernel");
}

}  // namespace shardcast
