#include "reshard/layout_cache.h"

#include <thread>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(LayoutCache, CompilesOncePerTextAndRules) {
  LayoutCache cache(2);
  auto a = cache.Get("x split:0\n", "t", {});
  ASSERT_TRUE(a.ok()) << a.status();
  auto again = cache.Get("x split:0\n", "t", {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(a->get(), again->get());
  EXPECT_EQ(cache.hits(), 1u);
  // The same text with rules is another layout.
  auto ruled = cache.Get("x split:0\n", "t", {"x=split:1"});
  ASSERT_TRUE(ruled.ok());
  EXPECT_NE(a->get(), ruled->get());
  EXPECT_EQ((*ruled)->Describe("x"), "split:1");
  EXPECT_EQ((*a)->Describe("x"), "split:0");
  EXPECT_EQ(cache.misses(), 2u);
}

TEST(LayoutCache, BoundedLeastRecentlyUsedFirst) {
  LayoutCache cache(2);
  auto first = cache.Get("a split:0\n", "t", {});
  ASSERT_TRUE(first.ok());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(cache.Get("b" + std::to_string(i) + " split:0\n", "t", {}).ok());
  EXPECT_EQ(cache.size(), 2u);
  // Evicted from the cache, still alive for the request holding it.
  EXPECT_EQ((*first)->Describe("a"), "split:0");
  const uint64_t misses = cache.misses();
  ASSERT_TRUE(cache.Get("a split:0\n", "t", {}).ok());
  EXPECT_EQ(cache.misses(), misses + 1);
}

TEST(LayoutCache, ErrorsAreReturnedNotCached) {
  LayoutCache cache;
  EXPECT_FALSE(cache.Get("(bad split:0\n", "t", {}).ok());
  EXPECT_FALSE(cache.Get("x split:0\n", "t", {"x=bogus"}).ok());
  EXPECT_EQ(cache.size(), 0u);
}

TEST(LayoutCache, ConcurrentGets) {
  LayoutCache cache(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto l = cache.Get("k" + std::to_string((t + i) % 6) + " split:0\n", "t", {});
        ASSERT_TRUE(l.ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(cache.size(), 4u);
}

}  // namespace
}  // namespace shardcast
