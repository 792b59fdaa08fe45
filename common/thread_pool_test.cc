#include "common/thread_pool.h"

#include <atomic>

#include "absl/strings/str_cat.h"

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

TEST(ParallelFor, ReturnsTheError) {
  ThreadPool pool(2);
  absl::Status s = ParallelFor(&pool, 10000, [&](size_t i) {
    return i == 5 ? absl::DataLossError("bad 5") : absl::OkStatus();
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "bad 5");
}

// Once a call has failed no call starts: each worker runs at most the one call it had begun.
// (With one failing index among many, how many others run first depends on scheduling: on a busy
// machine the worker holding index 5 can be preempted while the other runs all the rest.)
TEST(ParallelFor, StartsNothingAfterAnError) {
  ThreadPool pool(2);
  std::atomic<int> ran{0};
  absl::Status s = ParallelFor(&pool, 10000, [&](size_t i) {
    ++ran;
    return absl::DataLossError(absl::StrCat("bad ", i));
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_GE(ran.load(), 1);
  EXPECT_LE(ran.load(), pool.size());
}

TEST(ParallelFor, WorksInline) {
  int n = 0;
  ASSERT_TRUE(ParallelFor(nullptr, 3, [&](size_t) { ++n; return absl::OkStatus(); }).ok());
  EXPECT_EQ(n, 3);
}

}  // namespace
}  // namespace shardcast
