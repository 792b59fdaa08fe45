#include "checkpoint/region_copy.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace shardcast {

ElementSpan SpanOfRegion(const StridedChunk& c, const Box& region) {
  ElementSpan s;
  s.first = c.storage_offset;
  int64_t extent = 0;
  for (size_t d = 0; d < region.rank(); ++d) {
    s.first += (region.offsets[d] - c.box->offsets[d]) * (*c.strides)[d];
    extent += (region.sizes[d] - 1) * (*c.strides)[d];
  }
  s.last = s.first + extent;
  return s;
}

bool IsContiguousIn(const Box& box, const Box& region) {
  // Find the first dim (from the left) where region is not of size 1; all later dims must be full.
  size_t d = 0;
  while (d < region.rank() && region.sizes[d] == 1) ++d;
  for (size_t k = d + 1; k < region.rank(); ++k) {
    if (region.offsets[k] != box.offsets[k] || region.sizes[k] != box.sizes[k]) return false;
  }
  return true;
}

uint64_t DenseOffset(const Box& box, const Box& region, size_t item_size) {
  const Shape strides = ContiguousStrides(box.sizes);
  int64_t off = 0;
  for (size_t d = 0; d < box.rank(); ++d) off += (region.offsets[d] - box.offsets[d]) * strides[d];
  return static_cast<uint64_t>(off) * item_size;
}

namespace {

void CopySwapped(const char* src, int64_t src_stride_bytes, char* dst, int64_t n, size_t item) {
  for (int64_t i = 0; i < n; ++i) {
    const char* s = src + i * src_stride_bytes;
    char* o = dst + i * static_cast<int64_t>(item);
    for (size_t b = 0; b < item; ++b) o[b] = s[item - 1 - b];
  }
}

// One run of `n` elements into dense `dst`: the source's elements are `src_step_bytes` apart
// (`contiguous`: exactly one item apart, so one memcpy unless bytes are swapped).
void CopyRun(const char* src, int64_t src_step_bytes, char* dst, int64_t n, size_t item, bool contiguous,
             bool swap_bytes) {
  if (contiguous && !swap_bytes) {
    std::memcpy(dst, src, static_cast<size_t>(n) * item);
  } else if (swap_bytes) {
    CopySwapped(src, src_step_bytes, dst, n, item);
  } else {
    const int64_t item_i = static_cast<int64_t>(item);
    for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * item_i, src + i * src_step_bytes, item);
  }
}

}  // namespace

void CopyRegion(const StridedChunk& c, const char* src, int64_t src_first_elem, const Box& region, char* dst,
                const Box& dst_box, size_t item, bool swap_bytes) {
  const size_t rank = region.rank();
  const Shape dst_strides = ContiguousStrides(dst_box.sizes);
  if (rank == 0) {
    const char* s = src + (c.storage_offset - src_first_elem) * static_cast<int64_t>(item);
    if (swap_bytes) {
      CopySwapped(s, 0, dst, 1, item);
    } else {
      std::memcpy(dst, s, item);
    }
    return;
  }
  for (int64_t s : region.sizes) {
    if (s == 0) return;
  }
  const Shape& ss = *c.strides;
  // Element offsets of the region's first element.
  int64_t src_elem = c.storage_offset - src_first_elem;
  int64_t dst_elem = 0;
  for (size_t d = 0; d < rank; ++d) {
    src_elem += (region.offsets[d] - c.box->offsets[d]) * ss[d];
    dst_elem += (region.offsets[d] - dst_box.offsets[d]) * dst_strides[d];
  }
  // Merge the innermost run: if the source is dense over the trailing dims that the region covers
  // fully in both boxes, copy them as one run.
  size_t inner = rank - 1;
  int64_t run = region.sizes[inner];
  const bool unit = ss[inner] == 1;
  if (unit) {
    while (inner > 0 && region.sizes[inner] == c.box->sizes[inner] && region.sizes[inner] == dst_box.sizes[inner] &&
           ss[inner - 1] == ss[inner] * c.box->sizes[inner]) {
      --inner;
      run *= region.sizes[inner];
    }
  }
  const int64_t item_i = static_cast<int64_t>(item);
  std::vector<int64_t> idx(inner, 0);  // odometer over dims [0, inner)
  while (true) {
    CopyRun(src + src_elem * item_i, ss[rank - 1] * item_i, dst + dst_elem * item_i, run, item, unit, swap_bytes);
    // Advance the odometer.
    size_t d = inner;
    while (d > 0) {
      --d;
      ++idx[d];
      src_elem += ss[d];
      dst_elem += dst_strides[d];
      if (idx[d] < region.sizes[d]) break;
      src_elem -= ss[d] * region.sizes[d];
      dst_elem -= dst_strides[d] * region.sizes[d];
      idx[d] = 0;
      if (d == 0) return;
    }
    if (inner == 0) return;
  }
}

}  // namespace shardcast
