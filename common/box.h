// Box: an axis-aligned hyper-rectangle of a tensor's index space (per-dim offsets and sizes).
//
// Chunks stored in a checkpoint, the region a caller asks for and TP shards are all boxes.
// Rank 0 (a scalar) is the empty box with one element.
#ifndef SHARDCAST_COMMON_BOX_H_
#define SHARDCAST_COMMON_BOX_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shardcast {

using Shape = std::vector<int64_t>;

struct Box {
  Shape offsets;
  Shape sizes;

  size_t rank() const { return sizes.size(); }
  bool operator==(const Box& o) const { return offsets == o.offsets && sizes == o.sizes; }
  bool operator!=(const Box& o) const { return !(*this == o); }
};

// The whole index space of a tensor of `shape`.
Box FullBox(const Shape& shape);

// Product of the sizes. InvalidArgument on a negative size or int64 overflow.
absl::StatusOr<int64_t> NumElements(const Shape& sizes);

// The intersection of two boxes of equal rank; nullopt when empty. Scalars always intersect.
std::optional<Box> Intersect(const Box& a, const Box& b);

// True if `inner` lies inside `outer` (equal rank).
bool Contains(const Box& outer, const Box& inner);

// True if the boxes share at least one element (equal rank).
bool Overlaps(const Box& a, const Box& b);

// C-order (row-major) element strides of a dense tensor of `shape`.
Shape ContiguousStrides(const Shape& shape);

// "[2, 3]" / "offsets [0, 4] sizes [4, 4]".
std::string ShapeToString(const Shape& shape);
std::string BoxToString(const Box& box);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_BOX_H_
