// The batched device-to-device copy (kernels/batch_copy.h): blocks of 64 KiB, 16-byte vectors
// when a segment's source and destination are both 16-byte aligned, bytes otherwise.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kernels/batch_copy.h"

namespace shardcast {
namespace {

constexpr int kThreads = 256;
constexpr uint64_t kBlockBytes = 64 << 10;

// One launch's table, passed by value (well under the 4 KB parameter limit).
struct SegmentTable {
  int count;
  uint64_t first_block[kBatchCopySegments + 1];  // segment i has blocks [first_block[i], first_block[i + 1])
  CopySegment segments[kBatchCopySegments];
};
static_assert(sizeof(SegmentTable) <= 4000, "a launch's table must fit the kernel's parameters");

__device__ int FindSegment(const SegmentTable& t, uint64_t block) {
  int lo = 0, hi = t.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (t.first_block[mid] <= block) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

__global__ void BatchCopyKernel(const __grid_constant__ SegmentTable table) {
  const uint64_t block = blockIdx.x;
  const int i = FindSegment(table, block);
  const CopySegment s = table.segments[i];
  const uint64_t begin = (block - table.first_block[i]) * kBlockBytes;
  const uint64_t end = begin + kBlockBytes < s.nbytes ? begin + kBlockBytes : s.nbytes;
  const char* src = static_cast<const char*>(s.src);
  char* dst = static_cast<char*>(s.dst);
  const bool vectors = ((reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst)) & 15) == 0;
  uint64_t tail = begin;
  if (vectors) {
    const uint64_t vec_end = begin + ((end - begin) & ~uint64_t{15});
    for (uint64_t off = begin + threadIdx.x * 16; off < vec_end; off += kThreads * 16) {
      *reinterpret_cast<uint4*>(dst + off) = *reinterpret_cast<const uint4*>(src + off);
    }
    tail = vec_end;
  }
  for (uint64_t off = tail + threadIdx.x; off < end; off += kThreads) dst[off] = src[off];
}

}  // namespace

absl::Status LaunchBatchCopy(const CopySegment* segments, size_t count, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  SegmentTable table;
  size_t next = 0;
  while (next < count) {
    table.count = 0;
    uint64_t blocks = 0;
    for (; next < count && table.count < kBatchCopySegments; ++next) {
      if (segments[next].nbytes == 0) continue;
      table.first_block[table.count] = blocks;
      table.segments[table.count++] = segments[next];
      blocks += (segments[next].nbytes + kBlockBytes - 1) / kBlockBytes;
    }
    if (table.count == 0) break;
    table.first_block[table.count] = blocks;
    if (blocks > 0x7fffffffu) return absl::InvalidArgumentError("a batched copy of more than 2^31 blocks");
    BatchCopyKernel<<<static_cast<unsigned>(blocks), kThreads, 0, st>>>(table);
    if (const cudaError_t err = cudaGetLastError(); err != cudaSuccess) {
      return absl::InternalError(absl::StrCat("batched copy launch: ", cudaGetErrorString(err)));
    }
  }
  return absl::OkStatus();
}

}  // namespace shardcast
