// RpcMetrics: one process's gRPC call counts, errors by status code and latency histograms, per
// method (plain C++, thread-safe, lock-free: atomics only). The gRPC adapters time each call with
// an RpcTimer; GetRankState carries a Snapshot() to rank 0, which renders every rank's.
#ifndef SHARDCAST_SERVER_RPC_METRICS_H_
#define SHARDCAST_SERVER_RPC_METRICS_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace shardcast {

enum class RpcMethod { kGetManifest, kGetStatus, kFetch, kOpenDeviceSession, kPrepare };
inline constexpr int kRpcMethodCount = 5;
inline constexpr int kStatusCodeCount = 17;  // gRPC / absl codes 0 (OK) .. 16 (UNAUTHENTICATED)

// "GetManifest", ... (the gRPC method's name).
absl::string_view RpcMethodName(RpcMethod method);

// The latency buckets' upper bounds in seconds (Prometheus' default buckets, extended to 60 s:
// a Prepare that cuts shards or a Fetch of gigabytes takes seconds).
const std::vector<double>& RpcLatencyBounds();

struct RpcMethodStats {
  RpcMethod method = RpcMethod::kGetManifest;
  std::vector<uint64_t> latency_counts;  // per bucket, not cumulative; RpcLatencyBounds().size() + 1
  double latency_sum_seconds = 0;
  std::array<uint64_t, kStatusCodeCount> calls_by_code{};  // [0]: calls that succeeded
};

class RpcMetrics {
 public:
  // Counts one call of `method` that ended with `code` after `seconds`. Codes out of range count
  // as UNKNOWN.
  void Record(RpcMethod method, absl::StatusCode code, double seconds);
  // Every method, in enum order.
  std::vector<RpcMethodStats> Snapshot() const;

 private:
  struct PerMethod {
    std::array<std::atomic<uint64_t>, 32> buckets{};  // RpcLatencyBounds().size() + 1 used
    std::atomic<uint64_t> sum_nanos{0};
    std::array<std::atomic<uint64_t>, kStatusCodeCount> codes{};
  };
  std::array<PerMethod, kRpcMethodCount> methods_;
};

// Times one call from construction; End(status) records it and returns the status unchanged, so
// an adapter reads `return timer.End(...)`. A timer never ended (an exception) records nothing.
// `metrics` may be null (nothing recorded).
class RpcTimer {
 public:
  RpcTimer(RpcMetrics* metrics, RpcMethod method)
      : metrics_(metrics), method_(method), start_(std::chrono::steady_clock::now()) {}
  RpcTimer(const RpcTimer&) = delete;
  RpcTimer& operator=(const RpcTimer&) = delete;

  template <typename StatusT>  // grpc::Status or absl::Status (both have error_code()/code())
  StatusT End(StatusT status) {
    RecordCode(CodeOf(status));
    return status;
  }

 private:
  static absl::StatusCode CodeOf(const absl::Status& s) { return s.code(); }
  template <typename S>
  static absl::StatusCode CodeOf(const S& s) {
    return static_cast<absl::StatusCode>(s.error_code());
  }
  void RecordCode(absl::StatusCode code);

  RpcMetrics* metrics_;
  RpcMethod method_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_RPC_METRICS_H_
