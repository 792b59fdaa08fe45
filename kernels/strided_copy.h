// Host launcher API for the strided box-copy kernels. No CUDA types: `stream` is a cudaStream_t
// passed as void* (nullptr: the default stream), so host code never includes CUDA headers.
#ifndef SHARDCAST_KERNELS_STRIDED_COPY_H_
#define SHARDCAST_KERNELS_STRIDED_COPY_H_

#include <cstddef>

#include "absl/status/status.h"
#include "kernels/copy_desc.h"

namespace shardcast {

// Enqueues every descriptor (device pointers) on `stream`; does not synchronize. Raw copies with
// unit inner strides use 16/8/4/2-byte vector accesses as alignment allows; casts and zero fills
// have their own paths. Internal error (with CUDA's message) if a launch fails.
absl::Status LaunchCopyDescs(const CopyDesc* descs, size_t n, void* stream);

}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_STRIDED_COPY_H_
