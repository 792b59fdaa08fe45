// TransferObserver: what a data-plane transport (the gRPC stream, the device sender) reports about
// a client's transfer; RankCounters: its implementation, one loader rank's client counters;
// TransferGuard: a transfer's span (started in its constructor, finished in its destructor).
#ifndef SHARDCAST_SERVER_RANK_COUNTERS_H_
#define SHARDCAST_SERVER_RANK_COUNTERS_H_

#include <atomic>
#include <cstdint>

namespace shardcast {

class TransferObserver {
 public:
  virtual ~TransferObserver() = default;
  virtual void TransferStarted() = 0;
  virtual void TransferFinished() = 0;
};

// Clients served (transfers started) and active (started, not finished). Thread-safe.
class RankCounters final : public TransferObserver {
 public:
  void TransferStarted() override {
    ++clients_served_;
    ++clients_active_;
  }
  void TransferFinished() override { --clients_active_; }
  uint64_t clients_served() const { return clients_served_.load(); }
  uint32_t clients_active() const { return clients_active_.load(); }

 private:
  std::atomic<uint64_t> clients_served_{0};
  std::atomic<uint32_t> clients_active_{0};
};

// One client's transfer, reported to `observer` (which must outlive the guard). Move-only; a
// moved-from guard reports nothing.
class TransferGuard {
 public:
  explicit TransferGuard(TransferObserver* observer) : observer_(observer) {
    if (observer_ != nullptr) observer_->TransferStarted();
  }
  TransferGuard(TransferGuard&& other) noexcept : observer_(other.observer_) { other.observer_ = nullptr; }
  TransferGuard& operator=(TransferGuard&& other) noexcept {
    if (this != &other) {
      Finish();
      observer_ = other.observer_;
      other.observer_ = nullptr;
    }
    return *this;
  }
  TransferGuard(const TransferGuard&) = delete;
  TransferGuard& operator=(const TransferGuard&) = delete;
  ~TransferGuard() { Finish(); }

 private:
  void Finish() {
    if (observer_ != nullptr) observer_->TransferFinished();
    observer_ = nullptr;
  }
  TransferObserver* observer_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_RANK_COUNTERS_H_
