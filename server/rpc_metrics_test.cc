// RpcMetrics: a call lands in the right latency bucket (bounds inclusive), its code is counted
// per method, sums add up, concurrent records are all counted; RpcTimer passes statuses through.
#include "server/rpc_metrics.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(RpcMetrics, BucketsAreUpperBoundInclusiveAndPerMethod) {
  RpcMetrics m;
  m.Record(RpcMethod::kFetch, absl::StatusCode::kOk, 0.005);   // == first bound: first bucket
  m.Record(RpcMethod::kFetch, absl::StatusCode::kOk, 0.006);   // second bucket
  m.Record(RpcMethod::kFetch, absl::StatusCode::kNotFound, 1000);  // above the last bound: +Inf
  std::vector<RpcMethodStats> s = m.Snapshot();
  ASSERT_EQ(s.size(), static_cast<size_t>(kRpcMethodCount));
  const RpcMethodStats& fetch = s[static_cast<int>(RpcMethod::kFetch)];
  EXPECT_EQ(fetch.method, RpcMethod::kFetch);
  ASSERT_EQ(fetch.latency_counts.size(), RpcLatencyBounds().size() + 1);
  EXPECT_EQ(fetch.latency_counts[0], 1u);
  EXPECT_EQ(fetch.latency_counts[1], 1u);
  EXPECT_EQ(fetch.latency_counts.back(), 1u);
  EXPECT_NEAR(fetch.latency_sum_seconds, 1000.011, 1e-6);
  EXPECT_EQ(fetch.calls_by_code[0], 2u);
  EXPECT_EQ(fetch.calls_by_code[static_cast<int>(absl::StatusCode::kNotFound)], 1u);
  const RpcMethodStats& prepare = s[static_cast<int>(RpcMethod::kPrepare)];
  uint64_t prepare_calls = 0;
  for (uint64_t c : prepare.latency_counts) prepare_calls += c;
  EXPECT_EQ(prepare_calls, 0u);
}

TEST(RpcMetrics, CodesOutOfRangeCountAsUnknown) {
  RpcMetrics m;
  m.Record(RpcMethod::kPrepare, static_cast<absl::StatusCode>(99), 0);
  EXPECT_EQ(m.Snapshot()[static_cast<int>(RpcMethod::kPrepare)].calls_by_code[2], 1u);
}

TEST(RpcMetrics, ConcurrentRecordsAreAllCounted) {
  RpcMetrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m] {
      for (int i = 0; i < 1000; ++i) m.Record(RpcMethod::kGetStatus, absl::StatusCode::kOk, 0.001);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(m.Snapshot()[static_cast<int>(RpcMethod::kGetStatus)].calls_by_code[0], 4000u);
}

TEST(RpcTimer, EndRecordsTheCodeAndReturnsTheStatus) {
  RpcMetrics m;
  {
    RpcTimer timer(&m, RpcMethod::kGetManifest);
    absl::Status s = timer.End(absl::InvalidArgumentError("bad"));
    EXPECT_EQ(s.message(), "bad");
  }
  { RpcTimer unended(&m, RpcMethod::kGetManifest); }  // records nothing
  RpcTimer no_metrics(nullptr, RpcMethod::kGetManifest);
  EXPECT_TRUE(no_metrics.End(absl::OkStatus()).ok());
  const RpcMethodStats s = m.Snapshot()[static_cast<int>(RpcMethod::kGetManifest)];
  EXPECT_EQ(s.calls_by_code[static_cast<int>(absl::StatusCode::kInvalidArgument)], 1u);
  EXPECT_EQ(s.calls_by_code[0], 0u);
  EXPECT_EQ(RpcMethodName(RpcMethod::kOpenDeviceSession), "OpenDeviceSession");
}

}  // namespace
}  // namespace shardcast
