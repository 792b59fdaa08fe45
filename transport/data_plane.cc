#include "transport/data_plane.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace shardcast {

bool FitsIn(uint64_t offset, uint64_t size, uint64_t capacity) {
  return offset <= capacity && size <= capacity - offset;
}

namespace {

// Copies in pieces of this size, so that a cancel is seen between pieces.
constexpr uint64_t kLoopbackPieceBytes = 1ull << 20;

// What the two ends of a loopback pair share. The receiver's destinations are written only while
// Receive waits; Receive returns only once the sender has stopped copying into them.
struct LoopbackState {
  std::mutex mu;
  std::condition_variable cv;
  const std::vector<ShardDestination>* destinations = nullptr;  // while Receive waits
  bool copying = false;      // the sender writes into `destinations`
  bool sent = false;         // the sender has finished (send_result holds how)
  absl::Status send_result;
  absl::Status stopped;      // set by Cancel or the receiver's deadline: ends both sides
};

absl::Status CopyShard(LoopbackState& st, const ShardSource& from, const ShardDestination& to) {
  if (from.name != to.name || from.nbytes != to.nbytes) {
    return absl::DataLossError(absl::StrCat("the sender sent '", from.name, "' (", from.nbytes, " bytes) where '", to.name,
                                            "' (", to.nbytes, " bytes) was expected"));
  }
  for (uint64_t off = 0; off < from.nbytes; off += kLoopbackPieceBytes) {
    {
      std::lock_guard<std::mutex> lock(st.mu);
      if (!st.stopped.ok()) return st.stopped;
    }
    const uint64_t n = std::min(kLoopbackPieceBytes, from.nbytes - off);
    if (absl::Status s = from.copy_out(off, n, static_cast<char*>(to.data) + off); !s.ok()) return s;
  }
  return absl::OkStatus();
}

class LoopbackSender final : public ShardSender {
 public:
  explicit LoopbackSender(std::shared_ptr<LoopbackState> st) : st_(std::move(st)) {}

  absl::Status Send(const std::vector<ShardSource>& shards, DataPlaneClock::time_point deadline) override {
    std::unique_lock<std::mutex> lock(st_->mu);
    const bool ready = st_->cv.wait_until(lock, deadline, [&] { return st_->destinations != nullptr || !st_->stopped.ok(); });
    absl::Status result = !st_->stopped.ok() ? st_->stopped
                          : ready            ? absl::OkStatus()
                                             : absl::DeadlineExceededError("the receiver did not start in time");
    if (result.ok() && st_->destinations->size() != shards.size()) {
      result = absl::DataLossError(
          absl::StrCat("the sender has ", shards.size(), " shards, the receiver wants ", st_->destinations->size()));
    }
    if (result.ok()) {
      st_->copying = true;
      const std::vector<ShardDestination>& to = *st_->destinations;
      lock.unlock();
      for (size_t i = 0; i < shards.size() && result.ok(); ++i) result = CopyShard(*st_, shards[i], to[i]);
      lock.lock();
      st_->copying = false;
    }
    st_->sent = true;
    st_->send_result = result;
    st_->cv.notify_all();
    return result;
  }

 private:
  std::shared_ptr<LoopbackState> st_;
};

class LoopbackReceiver final : public ShardReceiver {
 public:
  explicit LoopbackReceiver(std::shared_ptr<LoopbackState> st) : st_(std::move(st)) {}

  absl::Status Receive(const std::vector<ShardDestination>& shards, DataPlaneClock::time_point deadline) override {
    std::unique_lock<std::mutex> lock(st_->mu);
    st_->destinations = &shards;
    st_->cv.notify_all();
    const bool done = st_->cv.wait_until(lock, deadline, [&] { return st_->sent || !st_->stopped.ok(); });
    if (!done && st_->stopped.ok()) {
      st_->stopped = absl::DeadlineExceededError("the loopback transfer did not finish before the deadline");
    }
    st_->cv.wait(lock, [&] { return !st_->copying; });  // the sender no longer writes into `shards`
    st_->destinations = nullptr;
    if (st_->sent && !st_->send_result.ok()) {
      return absl::Status(st_->send_result.code(), absl::StrCat("the sender failed: ", st_->send_result.message()));
    }
    return st_->sent ? absl::OkStatus() : st_->stopped;
  }

  void Cancel(absl::Status why) override {
    std::lock_guard<std::mutex> lock(st_->mu);
    if (st_->stopped.ok()) st_->stopped = why.ok() ? absl::CancelledError("cancelled") : std::move(why);
    st_->cv.notify_all();
  }

 private:
  std::shared_ptr<LoopbackState> st_;
};

}  // namespace

LoopbackPair MakeLoopbackPair() {
  auto st = std::make_shared<LoopbackState>();
  return LoopbackPair{std::make_unique<LoopbackSender>(st), std::make_unique<LoopbackReceiver>(st)};
}

}  // namespace shardcast
