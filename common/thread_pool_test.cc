#include "common/thread_pool.h"

#include <atomic>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(ParallelFor, RunsEveryIndexOnce) {
  ThreadPool pool(4);
  std::vector<std::atomic<int>> hits(1000);
  ASSERT_TRUE(ParallelFor(&pool, hits.size(), [&](size_t i) {
                ++hits[i];
                return absl::OkStatus();
              }).ok());
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ParallelFor, ReturnsAnErrorAndStops) {
  ThreadPool pool(2);
  std::atomic<int> ran{0};
  absl::Status s = ParallelFor(&pool, 10000, [&](size_t i) {
    ++ran;
    return i == 5 ? absl::DataLossError("bad 5") : absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_LT(ran.load(), 10000);
}

TEST(ParallelFor, WorksInline) {
  int n = 0;
  ASSERT_TRUE(ParallelFor(nullptr, 3, [&](size_t) { ++n; return absl::OkStatus(); }).ok());
  EXPECT_EQ(n, 3);
}

}  // namespace
}  // namespace shardcast
