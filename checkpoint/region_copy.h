// Copying a box of elements out of a stored chunk: the index math of assembling any region of a
// global tensor from chunks saved in any grid. Pure: pointers in, pointers out.
//
// Coordinates are global. A chunk covers `chunk_box`; its element g lives at storage element
//   storage_offset + sum_d (g[d] - chunk_box.offsets[d]) * strides[d].
// A destination buffer holds `dst_box` densely in C order. `region` must lie inside both boxes.
#ifndef SHARDCAST_CHECKPOINT_REGION_COPY_H_
#define SHARDCAST_CHECKPOINT_REGION_COPY_H_

#include <cstddef>
#include <cstdint>

#include "common/box.h"

namespace shardcast {

struct StridedChunk {
  const Box* box = nullptr;      // the chunk's box in global coordinates
  const Shape* strides = nullptr;  // element strides of the stored view
  int64_t storage_offset = 0;    // element index of the view's first element in its storage
};

// The storage elements [first, last] that `region` touches (inclusive; region non-empty).
struct ElementSpan {
  int64_t first = 0;
  int64_t last = 0;
};
ElementSpan SpanOfRegion(const StridedChunk& chunk, const Box& region);

// Copies `region` from a chunk whose storage element `src_first_elem` is at `src` (a caller that
// read only the span of the region passes span.first) into `dst` (holding `dst_box`).
// `swap_bytes` reverses each element's bytes (big-endian records).
void CopyRegion(const StridedChunk& chunk, const char* src, int64_t src_first_elem, const Box& region,
                char* dst, const Box& dst_box, size_t item_size, bool swap_bytes);

// True when `region` occupies one contiguous byte range of a dense C-order buffer holding `box`
// (all dims after the first partial one are full).
bool IsContiguousIn(const Box& box, const Box& region);

// Byte offset of `region`'s first element inside a dense C-order buffer holding `box`.
uint64_t DenseOffset(const Box& box, const Box& region, size_t item_size);

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_REGION_COPY_H_
