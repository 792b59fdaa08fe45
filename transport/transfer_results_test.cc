// TransferResults: a waiter gets the sender's result as soon as it is recorded (and not before),
// the session must match, a result is handed out once, a wait ends at its deadline or on cancel,
// and finished results nobody collected are dropped beyond the bound, oldest first.
#include "transport/transfer_results.h"

#include <atomic>
#include <functional>
#include <future>
#include <thread>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

const auto kNever = [] { return false; };

// The wait's status, and how the transfer ended (untouched: "not set").
struct Waited {
  absl::Status wait;
  absl::Status result = absl::UnknownError("not set");
};

Waited AwaitFor(TransferResults& results, const std::string& session, uint64_t id, Clock::duration timeout,
                const std::function<bool()>& cancelled = kNever) {
  Waited w;
  w.wait = results.Await(session, id, Clock::now() + timeout, cancelled, &w.result, milliseconds(5));
  return w;
}

TEST(TransferResults, AWaiterGetsTheSendersFailurePromptly) {
  TransferResults results;
  const uint64_t id = results.Start("session-a");
  const auto t0 = Clock::now();
  auto waited = std::async(std::launch::async, [&] { return AwaitFor(results, "session-a", id, seconds(30)); });
  EXPECT_EQ(waited.wait_for(milliseconds(50)), std::future_status::timeout) << "returned before the send ended";
  results.Finish(id, absl::UnavailableError("ncclSend: remote process exited"));
  const Waited w = waited.get();
  EXPECT_LT(Clock::now() - t0, seconds(10));
  ASSERT_TRUE(w.wait.ok()) << w.wait;
  EXPECT_EQ(w.result.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(w.result.message(), "ncclSend: remote process exited");
}

TEST(TransferResults, AFinishedResultIsHandedOutOnceAndOnlyToItsSession) {
  TransferResults results;
  const uint64_t a = results.Start("session-a");
  const uint64_t b = results.Start("session-b");
  EXPECT_NE(a, b);
  results.Finish(a, absl::OkStatus());
  Waited other = AwaitFor(results, "session-b", a, seconds(1));
  EXPECT_EQ(other.wait.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(other.result.message(), "not set");
  const Waited mine = AwaitFor(results, "session-a", a, seconds(1));
  EXPECT_TRUE(mine.wait.ok()) << mine.wait;
  EXPECT_TRUE(mine.result.ok()) << mine.result;
  EXPECT_EQ(AwaitFor(results, "session-a", a, seconds(1)).wait.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(AwaitFor(results, "session-a", 999, seconds(1)).wait.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(results.size(), 1u);  // b is still running
}

TEST(TransferResults, AWaitEndsAtItsDeadlineOrWhenCancelled) {
  TransferResults results;
  const uint64_t id = results.Start("s");
  const Waited late = AwaitFor(results, "s", id, milliseconds(50));
  EXPECT_EQ(late.wait.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(late.result.message(), "not set");
  std::atomic<bool> cancelled{false};
  auto waited = std::async(std::launch::async, [&] {
    return AwaitFor(results, "s", id, seconds(30), [&] { return cancelled.load(); });
  });
  std::this_thread::sleep_for(milliseconds(20));
  cancelled = true;
  EXPECT_EQ(waited.get().wait.code(), absl::StatusCode::kCancelled);
  // The transfer is still known: its result can be collected later.
  results.Finish(id, absl::InternalError("late"));
  EXPECT_EQ(AwaitFor(results, "s", id, seconds(1)).result.code(), absl::StatusCode::kInternal);
}

TEST(TransferResults, UncollectedResultsAreDroppedOldestFirstButRunningOnesStay) {
  TransferResults results(/*max_finished=*/2);
  const uint64_t running = results.Start("s");
  const uint64_t first = results.Start("s");
  const uint64_t second = results.Start("s");
  const uint64_t third = results.Start("s");
  results.Finish(first, absl::OkStatus());
  results.Finish(second, absl::OkStatus());
  results.Finish(third, absl::OkStatus());
  EXPECT_EQ(results.size(), 3u);  // running + the two newest finished
  EXPECT_EQ(AwaitFor(results, "s", first, seconds(1)).wait.code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(AwaitFor(results, "s", second, seconds(1)).result.ok());
  EXPECT_TRUE(AwaitFor(results, "s", third, seconds(1)).result.ok());
  EXPECT_EQ(AwaitFor(results, "s", running, milliseconds(10)).wait.code(), absl::StatusCode::kDeadlineExceeded);
}

}  // namespace
}  // namespace shardcast
