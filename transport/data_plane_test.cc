// The in-process loopback pair driven end to end through the data-plane interface: bytes arrive
// whole, a sender's failure reaches the waiting receiver with its reason (promptly, not at the
// deadline), a cancel or the deadline ends both sides, and mismatched shards are refused. Plus
// FitsIn's overflow-safe bounds.
#include "transport/data_plane.h"

#include <chrono>
#include <cstring>
#include <future>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

DataPlaneClock::time_point In(DataPlaneClock::duration d) { return DataPlaneClock::now() + d; }

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// A source reading from `bytes` (which must outlive it).
ShardSource FromString(const std::string& name, const std::string& bytes) {
  return ShardSource{name, bytes.size(), bytes.data(), [&bytes](uint64_t off, uint64_t n, void* dst) {
                       std::memcpy(dst, bytes.data() + off, n);
                       return absl::OkStatus();
                     }};
}

TEST(LoopbackPair, DeliversEveryShardWhole) {
  // 3 MiB + 1 crosses the loopback's 1 MiB copy pieces; an empty shard is still a shard.
  const std::string a = RandomBytes((3 << 20) + 1, 1), b = RandomBytes(17, 2), empty;
  std::string got_a(a.size(), 'x'), got_b(b.size(), 'x');
  LoopbackPair pair = MakeLoopbackPair();
  auto sent = std::async(std::launch::async, [&] {
    return pair.sender->Send({FromString("a", a), FromString("b", b), FromString("e", empty)}, In(seconds(30)));
  });
  const absl::Status received =
      pair.receiver->Receive({{"a", got_a.data(), got_a.size()}, {"b", got_b.data(), got_b.size()}, {"e", nullptr, 0}},
                             In(seconds(30)));
  EXPECT_TRUE(received.ok()) << received;
  EXPECT_TRUE(sent.get().ok());
  EXPECT_EQ(got_a, a);
  EXPECT_EQ(got_b, b);
}

TEST(LoopbackPair, SenderFailureReachesTheWaitingReceiverWithItsReason) {
  const std::string a = RandomBytes(64, 3);
  std::string got_a(64, 'x'), got_b(64, 'x');
  ShardSource broken{"b", 64, nullptr, [](uint64_t, uint64_t, void*) {
                       return absl::DataLossError("data file __1_0.distcp truncated");
                     }};
  LoopbackPair pair = MakeLoopbackPair();
  const auto t0 = DataPlaneClock::now();
  auto sent = std::async(std::launch::async, [&] { return pair.sender->Send({FromString("a", a), broken}, In(seconds(30))); });
  const absl::Status received =
      pair.receiver->Receive({{"a", got_a.data(), 64}, {"b", got_b.data(), 64}}, In(seconds(30)));
  EXPECT_LT(DataPlaneClock::now() - t0, seconds(10)) << "the receiver waited for its deadline";
  EXPECT_EQ(received.code(), absl::StatusCode::kDataLoss) << received;
  EXPECT_NE(received.message().find("the sender failed"), std::string::npos) << received;
  EXPECT_NE(received.message().find("__1_0.distcp truncated"), std::string::npos) << received;
  EXPECT_EQ(sent.get().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(got_a, a);                       // the shard before the failure arrived
  EXPECT_EQ(got_b, std::string(64, 'x'));  // nothing was written for the failed one
}

TEST(LoopbackPair, CancelEndsTheReceiveAndTheLaterSendWithTheReason) {
  std::string got(8, 'x');
  LoopbackPair pair = MakeLoopbackPair();
  const auto t0 = DataPlaneClock::now();
  auto received = std::async(std::launch::async, [&] { return pair.receiver->Receive({{"a", got.data(), 8}}, In(seconds(30))); });
  std::this_thread::sleep_for(milliseconds(50));
  pair.receiver->Cancel(absl::UnavailableError("loader rank 1 failed: killed"));
  const absl::Status r = received.get();
  EXPECT_LT(DataPlaneClock::now() - t0, seconds(10));
  EXPECT_EQ(r.code(), absl::StatusCode::kUnavailable) << r;
  EXPECT_NE(r.message().find("loader rank 1 failed"), std::string::npos) << r;
  const std::string a(8, 'A');
  EXPECT_EQ(pair.sender->Send({FromString("a", a)}, In(seconds(30))).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(got, std::string(8, 'x'));
}

TEST(LoopbackPair, CancelDuringACopyStopsTheSenderBeforeReceiveReturns) {
  // The sender's copy blocks until the cancel: Receive must not return while the sender may still
  // write into its buffers, and the sender must stop at the next piece.
  std::string got((4 << 20), 'x');
  std::promise<void> copying;
  std::atomic<int> pieces{0};
  std::atomic<bool> cancelled{false};
  ShardSource slow{"a", got.size(), nullptr, [&](uint64_t, uint64_t n, void* dst) {
                     if (pieces++ == 0) copying.set_value();
                     while (!cancelled) std::this_thread::sleep_for(milliseconds(1));
                     std::memset(dst, 'S', n);
                     return absl::OkStatus();
                   }};
  LoopbackPair pair = MakeLoopbackPair();
  auto sent = std::async(std::launch::async, [&] { return pair.sender->Send({slow}, In(seconds(30))); });
  auto received = std::async(std::launch::async, [&] { return pair.receiver->Receive({{"a", got.data(), got.size()}}, In(seconds(30))); });
  copying.get_future().wait();
  pair.receiver->Cancel(absl::CancelledError("stop"));
  cancelled = true;
  EXPECT_EQ(received.get().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(sent.get().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(pieces.load(), 1);  // 4 pieces were due; the cancel was seen after the first
}

TEST(LoopbackPair, ReceiveEndsAtItsDeadlineWhenNothingIsSent) {
  std::string got(8, 'x');
  LoopbackPair pair = MakeLoopbackPair();
  const absl::Status r = pair.receiver->Receive({{"a", got.data(), 8}}, In(milliseconds(100)));
  EXPECT_EQ(r.code(), absl::StatusCode::kDeadlineExceeded) << r;
}

TEST(LoopbackPair, ASenderWithOtherShardsIsRefused) {
  const std::string a(8, 'A');
  std::string got(9, 'x');
  LoopbackPair pair = MakeLoopbackPair();
  auto sent = std::async(std::launch::async, [&] { return pair.sender->Send({FromString("a", a)}, In(seconds(30))); });
  const absl::Status r = pair.receiver->Receive({{"a", got.data(), 9}}, In(seconds(30)));
  EXPECT_EQ(r.code(), absl::StatusCode::kDataLoss) << r;
  EXPECT_NE(r.message().find("8 bytes"), std::string::npos) << r;
  EXPECT_EQ(sent.get().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(got, std::string(9, 'x'));
}

TEST(FitsIn, NoWrapAround) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  EXPECT_TRUE(FitsIn(0, 16, 16));
  EXPECT_TRUE(FitsIn(16, 0, 16));
  EXPECT_FALSE(FitsIn(1, 16, 16));
  EXPECT_FALSE(FitsIn(17, 0, 16));
  EXPECT_FALSE(FitsIn(kMax - 7, 16, 16));
  EXPECT_FALSE(FitsIn(8, kMax, 16));
}

}  // namespace
}  // namespace shardcast
