#include "common/box.h"

#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(Box, IntersectOverlappingAndDisjoint) {
  Box a{{0, 0}, {4, 4}}, b{{2, 3}, {4, 4}}, c{{4, 0}, {4, 4}};
  auto i = Intersect(a, b);
  ASSERT_TRUE(i.has_value());
  EXPECT_EQ(*i, (Box{{2, 3}, {2, 1}}));
  EXPECT_FALSE(Intersect(a, c).has_value());  // touching edges share no element
  EXPECT_TRUE(Overlaps(a, b));
}

TEST(Box, ScalarsAlwaysIntersect) { EXPECT_TRUE(Intersect(Box{}, Box{}).has_value()); }

TEST(Box, NumElementsChecksOverflowAndNegatives) {
  SC_ASSERT_OK_AND_ASSIGN(int64_t n, NumElements({2, 3, 4}));
  EXPECT_EQ(n, 24);
  SC_ASSERT_OK_AND_ASSIGN(int64_t one, NumElements({}));
  EXPECT_EQ(one, 1);
  EXPECT_FALSE(NumElements({1ll << 40, 1ll << 40}).ok());
  EXPECT_FALSE(NumElements({-1, 2}).ok());
}

TEST(Box, ContainsAndStrides) {
  EXPECT_TRUE(Contains(Box{{0, 0}, {4, 4}}, Box{{1, 1}, {3, 3}}));
  EXPECT_FALSE(Contains(Box{{0, 0}, {4, 4}}, Box{{1, 1}, {4, 3}}));
  EXPECT_EQ(ContiguousStrides({2, 3, 4}), (Shape{12, 4, 1}));
  EXPECT_EQ(ShapeToString({2, 3}), "[2, 3]");
}

}  // namespace
}  // namespace shardcast
