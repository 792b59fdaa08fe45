// RpcMetrics and RpcTimer (see rpc_metrics.h).
#include "server/rpc_metrics.h"

#include <algorithm>

namespace shardcast {

absl::string_view RpcMethodName(RpcMethod method) {
  switch (method) {
    case RpcMethod::kGetManifest: return "GetManifest";
    case RpcMethod::kGetStatus: return "GetStatus";
    case RpcMethod::kFetch: return "Fetch";
    case RpcMethod::kOpenDeviceSession: return "OpenDeviceSession";
    case RpcMethod::kPrepare: return "Prepare";
  }
  return "unknown";
}

const std::vector<double>& RpcLatencyBounds() {
  static const std::vector<double> bounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                             1,     2.5,  5,     10,   30,  60};
  return bounds;
}

void RpcMetrics::Record(RpcMethod method, absl::StatusCode code, double seconds) {
  PerMethod& m = methods_[static_cast<int>(method)];
  const std::vector<double>& bounds = RpcLatencyBounds();
  // The first bucket whose bound is >= seconds (Prometheus buckets are "less or equal").
  const size_t bucket = std::lower_bound(bounds.begin(), bounds.end(), seconds) - bounds.begin();
  m.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  const double nanos = std::max(0.0, seconds) * 1e9;
  m.sum_nanos.fetch_add(static_cast<uint64_t>(nanos), std::memory_order_relaxed);
  int c = static_cast<int>(code);
  if (c < 0 || c >= kStatusCodeCount) c = static_cast<int>(absl::StatusCode::kUnknown);
  m.codes[c].fetch_add(1, std::memory_order_relaxed);
}

std::vector<RpcMethodStats> RpcMetrics::Snapshot() const {
  std::vector<RpcMethodStats> out;
  const size_t buckets = RpcLatencyBounds().size() + 1;
  for (int i = 0; i < kRpcMethodCount; ++i) {
    const PerMethod& m = methods_[i];
    RpcMethodStats s;
    s.method = static_cast<RpcMethod>(i);
    for (size_t b = 0; b < buckets; ++b) s.latency_counts.push_back(m.buckets[b].load(std::memory_order_relaxed));
    s.latency_sum_seconds = static_cast<double>(m.sum_nanos.load(std::memory_order_relaxed)) / 1e9;
    for (int c = 0; c < kStatusCodeCount; ++c) s.calls_by_code[c] = m.codes[c].load(std::memory_order_relaxed);
    out.push_back(std::move(s));
  }
  return out;
}

void RpcTimer::RecordCode(absl::StatusCode code) {
  if (metrics_ == nullptr) return;
  metrics_->Record(method_, code, std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
}

}  // namespace shardcast
