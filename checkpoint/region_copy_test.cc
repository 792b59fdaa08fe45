// Property test: copying random regions out of chunks with random (also transposed, offset)
// layouts equals a naive element-by-element reference.
#include "checkpoint/region_copy.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(RegionCopy, MatchesNaiveReferenceOnRandomLayouts) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 2000; ++iter) {
    const size_t rank = rng() % 4;
    Box chunk;
    for (size_t d = 0; d < rank; ++d) {
      chunk.offsets.push_back(rng() % 5);
      chunk.sizes.push_back(1 + rng() % 5);
    }
    // A storage layout: a random permutation of dims (transposed saves), plus a storage offset.
    std::vector<size_t> perm(rank);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    Shape strides(rank);
    int64_t s = 1;
    for (size_t k = rank; k-- > 0;) {
      strides[perm[k]] = s;
      s *= chunk.sizes[perm[k]];
    }
    const int64_t storage_offset = rng() % 3;
    const size_t item = std::vector<size_t>{1, 2, 4, 8}[rng() % 4];
    const bool swap = rng() % 4 == 0;
    std::vector<char> storage((storage_offset + s) * item);
    for (char& c : storage) c = static_cast<char>(rng());
    // A region inside the chunk and a destination box around it.
    Box region, dst_box;
    for (size_t d = 0; d < rank; ++d) {
      int64_t lo = chunk.offsets[d] + rng() % chunk.sizes[d];
      int64_t hi = lo + 1 + rng() % (chunk.offsets[d] + chunk.sizes[d] - lo);
      region.offsets.push_back(lo);
      region.sizes.push_back(hi - lo);
      int64_t dlo = lo - rng() % 3;
      dst_box.offsets.push_back(dlo);
      dst_box.sizes.push_back(hi - dlo + rng() % 3);
    }
    int64_t dst_n = 1;
    for (int64_t x : dst_box.sizes) dst_n *= x;
    std::vector<char> got(dst_n * item, 0), want(dst_n * item, 0);
    StridedChunk sc{&chunk, &strides, storage_offset};
    // Feed only the span, as the reader does.
    ElementSpan span = SpanOfRegion(sc, region);
    ASSERT_GE(span.first, 0);
    ASSERT_LT(span.last, static_cast<int64_t>(storage.size() / item));
    CopyRegion(sc, storage.data() + span.first * item, span.first, region, got.data(), dst_box, item, swap);
    // Naive reference.
    const Shape dst_strides = ContiguousStrides(dst_box.sizes);
    int64_t region_n = 1;
    for (int64_t x : region.sizes) region_n *= x;
    for (int64_t e = 0; e < region_n; ++e) {
      int64_t rem = e, src = storage_offset, dst = 0;
      for (size_t d = rank; d-- > 0;) {
        int64_t g = region.offsets[d] + rem % region.sizes[d];
        rem /= region.sizes[d];
        src += (g - chunk.offsets[d]) * strides[d];
        dst += (g - dst_box.offsets[d]) * dst_strides[d];
      }
      for (size_t b = 0; b < item; ++b) want[dst * item + b] = storage[src * item + (swap ? item - 1 - b : b)];
    }
    ASSERT_EQ(got, want) << "iteration " << iter;
  }
}

TEST(RegionCopy, ContiguityHelpers) {
  Box box{{0, 0}, {8, 4}};
  EXPECT_TRUE(IsContiguousIn(box, Box{{2, 0}, {3, 4}}));   // full rows
  EXPECT_FALSE(IsContiguousIn(box, Box{{2, 0}, {3, 2}}));  // a column slice
  EXPECT_TRUE(IsContiguousIn(box, Box{{2, 1}, {1, 2}}));   // part of one row
  EXPECT_EQ(DenseOffset(box, Box{{2, 1}, {1, 2}}, 2), (2 * 4 + 1) * 2u);
}

}  // namespace
}  // namespace shardcast
