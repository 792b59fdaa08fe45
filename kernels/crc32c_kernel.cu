// CRC32C on the GPU: one thread per piece, slicing-by-8 over 8-byte loads with the tables in
// shared memory, the same arithmetic as common/crc32c's portable path. Pieces are joined on the
// host (kernels/device_crc32c.cc).
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kernels/crc32c_kernel.h"

namespace shardcast {
namespace {

constexpr int kThreads = 128;

__global__ void Crc32cPiecesKernel(const CrcPiece* __restrict__ pieces, int count, const uint32_t* __restrict__ tables,
                                   uint32_t* __restrict__ out) {
  __shared__ uint32_t t[8][256];
  for (int i = threadIdx.x; i < 8 * 256; i += blockDim.x) (&t[0][0])[i] = tables[i];
  __syncthreads();
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= count) return;
  const uint8_t* p = static_cast<const uint8_t*>(pieces[idx].data);
  uint64_t n = pieces[idx].nbytes;
  uint32_t c = 0xFFFFFFFFu;
  while (n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
    --n;
  }
  const uint2* q = reinterpret_cast<const uint2*>(p);
  for (; n >= 8; n -= 8) {
    const uint2 v = __ldg(q++);
    const uint32_t lo = v.x ^ c, hi = v.y;
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
        t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  p = reinterpret_cast<const uint8_t*>(q);
  while (n-- > 0) c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
  out[idx] = ~c;
}

}  // namespace

absl::Status LaunchCrc32cPieces(const CrcPiece* pieces, int count, const uint32_t* tables, uint32_t* out, void* stream) {
  if (count <= 0) return absl::OkStatus();
  const int blocks = (count + kThreads - 1) / kThreads;
  Crc32cPiecesKernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(pieces, count, tables, out);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return absl::InternalError(absl::StrCat("CRC32C kernel launch: ", cudaGetErrorString(err)));
  return absl::OkStatus();
}

}  // namespace shardcast
