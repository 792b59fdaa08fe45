// Host launcher for the GPU CRC32C of spans (kernels/crc32c_math.h: NOTE [CRC32C of a span in
// pieces, all on the GPU]). No CUDA types: `stream` is a cudaStream_t passed as void* (nullptr:
// the default stream). kernels/device_crc32c.h is the API to use.
#ifndef SHARDCAST_KERNELS_CRC32C_KERNEL_H_
#define SHARDCAST_KERNELS_CRC32C_KERNEL_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/crc32c_math.h"

namespace shardcast {

// One span of device memory, and the index of its first piece among all spans' pieces
// (first_piece[i+1] = first_piece[i] + PieceCount(nbytes[i])).
struct CrcSpan {
  const void* data;
  uint64_t nbytes;
  uint64_t first_piece;
};

// Enqueues out[i] = Crc32c(spans[i]) for i < span_count: one thread per piece writes its raw CRC
// to `piece_crcs` (piece_count entries), then one thread per span joins them. `spans`, `tables`,
// `piece_crcs` and `out` are device pointers. Does not synchronize.
absl::Status LaunchSpanCrc32c(const CrcSpan* spans, int span_count, uint64_t piece_count,
                              const crc32c_math::Tables* tables, uint32_t* piece_crcs, uint32_t* out, void* stream);

}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_CRC32C_KERNEL_H_
