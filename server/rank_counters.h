// TransferObserver: what a data-plane transport (the gRPC stream, the device sender) reports about
// a client's transfer; RankCounters: its implementation, one loader rank's client counters;
// TransferGuard: a transfer's span (started in its constructor, finished in its destructor).
// Also the bytes each transport delivered (whole transfers that succeeded).
#ifndef SHARDCAST_SERVER_RANK_COUNTERS_H_
#define SHARDCAST_SERVER_RANK_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstdint>

namespace shardcast {

// The data plane a client's transfer went over.
enum class Transport { kStream, kNccl, kIpc };
inline constexpr int kTransportCount = 3;

class TransferObserver {
 public:
  virtual ~TransferObserver() = default;
  virtual void TransferStarted() = 0;
  virtual void TransferFinished() = 0;
  // A transfer over `transport` delivered `bytes` (reported once, when it succeeded).
  virtual void BytesSent(Transport transport, uint64_t bytes) = 0;
};

// Clients served (transfers started) and active (started, not finished). Thread-safe.
class RankCounters final : public TransferObserver {
 public:
  void TransferStarted() override {
    ++clients_served_;
    ++clients_active_;
  }
  void TransferFinished() override { --clients_active_; }
  void BytesSent(Transport transport, uint64_t bytes) override { bytes_sent_[static_cast<int>(transport)] += bytes; }
  uint64_t clients_served() const { return clients_served_.load(); }
  uint32_t clients_active() const { return clients_active_.load(); }
  uint64_t bytes_sent(Transport transport) const { return bytes_sent_[static_cast<int>(transport)].load(); }

 private:
  std::atomic<uint64_t> clients_served_{0};
  std::atomic<uint32_t> clients_active_{0};
  std::array<std::atomic<uint64_t>, kTransportCount> bytes_sent_{};
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
