// Many device-to-device copies in a few kernel launches. A receive over CUDA IPC copies one
// segment per shard (hundreds for an encoder); one cudaMemcpyAsync each cost about 4 us of host
// time per call (1.2 ms for 293 shards, ten times the copies themselves). Here every launch carries
// up to kBatchCopySegments segments in its parameters (no descriptor upload, no allocation), and
// the blocks of a launch are dealt over its segments by size. No CUDA types: `stream` is a
// cudaStream_t passed as void* (nullptr: the default stream).
#ifndef SHARDCAST_KERNELS_BATCH_COPY_H_
#define SHARDCAST_KERNELS_BATCH_COPY_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace shardcast {

// `nbytes` from `src` to `dst`, both device memory the current device can reach; segments must
// not overlap one another's destinations.
struct CopySegment {
  const void* src;
  void* dst;
  uint64_t nbytes;
};

// Segments per launch (their table travels in the kernel's 4 KB of parameters).
constexpr int kBatchCopySegments = 96;

// Enqueues the copies of `segments` on `stream`, ceil(count / kBatchCopySegments) launches; does
// not synchronize. Empty segments are skipped.
absl::Status LaunchBatchCopy(const CopySegment* segments, size_t count, void* stream);

}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_BATCH_COPY_H_
