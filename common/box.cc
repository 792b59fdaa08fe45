#include "common/box.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace shardcast {

Box FullBox(const Shape& shape) { return Box{Shape(shape.size(), 0), shape}; }

absl::StatusOr<int64_t> NumElements(const Shape& sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) {
    if (s < 0) return absl::InvalidArgumentError(absl::StrCat("negative size in ", ShapeToString(sizes)));
    if (__builtin_mul_overflow(n, s, &n)) {
      return absl::InvalidArgumentError(absl::StrCat("element count of ", ShapeToString(sizes), " overflows int64"));
    }
  }
  return n;
}

std::optional<Box> Intersect(const Box& a, const Box& b) {
  Box out;
  out.offsets.resize(a.rank());
  out.sizes.resize(a.rank());
  for (size_t d = 0; d < a.rank(); ++d) {
    const int64_t lo = std::max(a.offsets[d], b.offsets[d]);
    const int64_t hi = std::min(a.offsets[d] + a.sizes[d], b.offsets[d] + b.sizes[d]);
    if (hi <= lo) return std::nullopt;
    out.offsets[d] = lo;
    out.sizes[d] = hi - lo;
  }
  return out;
}

bool Contains(const Box& outer, const Box& inner) {
  for (size_t d = 0; d < outer.rank(); ++d) {
    if (inner.offsets[d] < outer.offsets[d]) return false;
    if (inner.offsets[d] + inner.sizes[d] > outer.offsets[d] + outer.sizes[d]) return false;
  }
  return true;
}

bool Overlaps(const Box& a, const Box& b) { return Intersect(a, b).has_value(); }

Shape ContiguousStrides(const Shape& shape) {
  Shape strides(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
  return strides;
}

std::string ShapeToString(const Shape& shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

std::string BoxToString(const Box& box) {
  return absl::StrCat("offsets ", ShapeToString(box.offsets), " sizes ", ShapeToString(box.sizes));
}

}  // namespace shardcast
