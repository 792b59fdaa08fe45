// RankCounters and TransferGuard: a guard counts one client served and active for its lifetime,
// moves keep the count exact, and concurrent transfers are counted without loss.
#include "server/rank_counters.h"

#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(TransferGuard, CountsATransferForItsLifetime) {
  RankCounters counters;
  {
    TransferGuard transfer(&counters);
    EXPECT_EQ(counters.clients_served(), 1u);
    EXPECT_EQ(counters.clients_active(), 1u);
  }
  EXPECT_EQ(counters.clients_served(), 1u);
  EXPECT_EQ(counters.clients_active(), 0u);
}

TEST(TransferGuard, AMovedGuardFinishesOnce) {
  RankCounters counters;
  std::vector<TransferGuard> held;
  {
    TransferGuard a(&counters);
    held.push_back(std::move(a));
  }
  EXPECT_EQ(counters.clients_active(), 1u);  // `a` was moved from: its end reports nothing
  TransferGuard b(&counters);
  EXPECT_EQ(counters.clients_active(), 2u);
  held.front() = std::move(b);  // the overwritten transfer finishes
  EXPECT_EQ(counters.clients_active(), 1u);
  held.clear();
  EXPECT_EQ(counters.clients_active(), 0u);
  EXPECT_EQ(counters.clients_served(), 2u);
}

TEST(TransferGuard, ANullObserverIsIgnored) {
  TransferGuard nothing(nullptr);  // must not crash
  SUCCEED();
}

TEST(RankCounters, BytesSentAreCountedPerTransport) {
  RankCounters counters;
  counters.BytesSent(Transport::kStream, 100);
  counters.BytesSent(Transport::kStream, 20);
  counters.BytesSent(Transport::kIpc, 7);
  EXPECT_EQ(counters.bytes_sent(Transport::kStream), 120u);
  EXPECT_EQ(counters.bytes_sent(Transport::kNccl), 0u);
  EXPECT_EQ(counters.bytes_sent(Transport::kIpc), 7u);
}

TEST(RankCounters, ConcurrentTransfersAreCountedExactly) {
  RankCounters counters;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&counters] {
      for (int i = 0; i < 1000; ++i) TransferGuard transfer(&counters);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(counters.clients_served(), 8000u);
  EXPECT_EQ(counters.clients_active(), 0u);
}

}  // namespace
}  // namespace shardcast
