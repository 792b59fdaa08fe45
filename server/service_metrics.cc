// ServiceStatus -> Prometheus families (see service_metrics.h).
#include "server/service_metrics.h"

#include <functional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace shardcast {
namespace {

using RankValue = std::function<double(const v1::RankState&)>;

// One sample per rank.
MetricFamily PerRank(const v1::ServiceStatus& status, std::string name, MetricType type, std::string help,
                     const RankValue& value) {
  MetricFamily f{std::move(name), type, std::move(help), {}};
  for (const v1::RankState& r : status.ranks()) {
    f.samples.push_back({{{"rank", absl::StrCat(r.rank())}}, value(r), {}});
  }
  return f;
}

MetricFamily Single(std::string name, MetricType type, std::string help, double value) {
  return MetricFamily{std::move(name), type, std::move(help), {{{}, value, {}}}};
}

void AddStates(const v1::ServiceStatus& status, std::vector<MetricFamily>* out) {
  static const char* const kStates[] = {"loading", "ready", "failed", "stopping"};
  MetricFamily service{"shardcast_service_state", MetricType::kGauge,
                       "1 for the service's current state (loading, ready, failed, stopping), else 0.", {}};
  MetricFamily ranks{"shardcast_rank_state", MetricType::kGauge,
                     "1 for each loader rank's current state (loading, ready, failed, stopping), else 0.", {}};
  for (const char* state : kStates) {
    service.samples.push_back({{{"state", state}}, status.state() == state ? 1.0 : 0.0, {}});
    for (const v1::RankState& r : status.ranks()) {
      ranks.samples.push_back({{{"rank", absl::StrCat(r.rank())}, {"state", state}}, r.state() == state ? 1.0 : 0.0, {}});
    }
  }
  out->push_back(std::move(service));
  out->push_back(std::move(ranks));
}

void AddLoad(const v1::ServiceStatus& s, std::vector<MetricFamily>* out) {
  using T = MetricType;
  out->push_back(PerRank(s, "shardcast_read_bytes_total", T::kCounter,
                         "Bytes read from the checkpoint's files (payload, record heads and tails, whole spans).",
                         [](const v1::RankState& r) { return static_cast<double>(r.bytes_read()); }));
  out->push_back(PerRank(s, "shardcast_load_total_bytes", T::kGauge,
                         "Bytes of the tensors the rank owns: what it has to load.",
                         [](const v1::RankState& r) { return static_cast<double>(r.bytes_selected()); }));
  out->push_back(PerRank(s, "shardcast_load_done_bytes", T::kGauge,
                         "Bytes of owned tensors in place (progress: done / total).",
                         [](const v1::RankState& r) { return static_cast<double>(r.payload_bytes_done()); }));
  out->push_back(PerRank(s, "shardcast_load_seconds", T::kGauge, "Time spent loading (so far, or in total).",
                         [](const v1::RankState& r) { return r.load_seconds(); }));
  out->push_back(PerRank(s, "shardcast_tensors_owned", T::kGauge, "Tensors the rank owns.",
                         [](const v1::RankState& r) { return static_cast<double>(r.tensors_owned()); }));
}

void AddMemoryAndRequests(const v1::ServiceStatus& s, std::vector<MetricFamily>* out) {
  using T = MetricType;
  out->push_back(PerRank(s, "shardcast_memory_held_bytes", T::kGauge, "Bytes held: tensors and cached shards.",
                         [](const v1::RankState& r) { return static_cast<double>(r.memory_held()); }));
  out->push_back(PerRank(s, "shardcast_memory_budget_bytes", T::kGauge, "--memory-budget (0: no limit).",
                         [](const v1::RankState& r) { return static_cast<double>(r.memory_budget()); }));
  out->push_back(PerRank(s, "shardcast_requests_prepared_total", T::kCounter, "Requests produced and cached.",
                         [](const v1::RankState& r) { return static_cast<double>(r.requests_prepared()); }));
  out->push_back(PerRank(s, "shardcast_requests_cached", T::kGauge, "Prepared requests held now.",
                         [](const v1::RankState& r) { return static_cast<double>(r.requests_cached()); }));
  out->push_back(PerRank(s, "shardcast_requests_evicted_total", T::kCounter,
                         "Prepared requests evicted to make room (memory budget or --max-cached-requests).",
                         [](const v1::RankState& r) { return static_cast<double>(r.requests_evicted()); }));
  out->push_back(PerRank(s, "shardcast_leases_pinned", T::kGauge, "Manifests' pins outstanding.",
                         [](const v1::RankState& r) { return static_cast<double>(r.leases_pinned()); }));
}

void AddClients(const v1::ServiceStatus& s, std::vector<MetricFamily>* out) {
  using T = MetricType;
  out->push_back(PerRank(s, "shardcast_clients_active", T::kGauge, "Client transfers in progress.",
                         [](const v1::RankState& r) { return static_cast<double>(r.clients_active()); }));
  out->push_back(PerRank(s, "shardcast_clients_served_total", T::kCounter, "Client transfers started.",
                         [](const v1::RankState& r) { return static_cast<double>(r.clients_served()); }));
  MetricFamily sent{"shardcast_sent_bytes_total", T::kCounter,
                    "Bytes of client transfers that succeeded, by transport (stream, nccl, ipc).", {}};
  for (const v1::RankState& r : s.ranks()) {
    const std::string rank = absl::StrCat(r.rank());
    sent.samples.push_back({{{"rank", rank}, {"transport", "stream"}}, static_cast<double>(r.bytes_sent_stream()), {}});
    sent.samples.push_back({{{"rank", rank}, {"transport", "nccl"}}, static_cast<double>(r.bytes_sent_nccl()), {}});
    sent.samples.push_back({{{"rank", rank}, {"transport", "ipc"}}, static_cast<double>(r.bytes_sent_ipc()), {}});
  }
  out->push_back(std::move(sent));
  out->push_back(Single("shardcast_manifests_served_total", T::kCounter, "Manifests answered (rank 0).",
                        static_cast<double>(s.manifests_served())));
  out->push_back(Single("shardcast_manifests_in_flight", T::kGauge, "Manifests rank 0 is preparing now.",
                        static_cast<double>(s.manifests_in_flight())));
}

// Errors (non-OK codes that occurred) and latency histograms, per rank and method.
void AddRpcs(const v1::ServiceStatus& s, std::vector<MetricFamily>* out) {
  MetricFamily errors{"shardcast_rpc_errors_total", MetricType::kCounter,
                      "gRPC calls that returned an error, by method and status code.", {}};
  MetricFamily latency{"shardcast_rpc_latency_seconds", MetricType::kHistogram,
                       "gRPC call latency by method (Fetch: the whole stream).", {}};
  for (const v1::RankState& r : s.ranks()) {
    const std::string rank = absl::StrCat(r.rank());
    for (const v1::RpcStats& rpc : r.rpcs()) {
      for (int code = 1; code < rpc.calls_by_code_size(); ++code) {
        if (rpc.calls_by_code(code) == 0) continue;
        const std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
        errors.samples.push_back({{{"rank", rank}, {"method", rpc.method()}, {"code", name}},
                                  static_cast<double>(rpc.calls_by_code(code)), {}});
      }
      // A rank's malformed stats (another build's) must not take the whole scrape down.
      if (rpc.latency_counts_size() != rpc.latency_bounds_size() + 1) continue;
      MetricSample h;
      h.labels = {{"rank", rank}, {"method", rpc.method()}};
      h.histogram.bounds.assign(rpc.latency_bounds().begin(), rpc.latency_bounds().end());
      h.histogram.counts.assign(rpc.latency_counts().begin(), rpc.latency_counts().end());
      h.histogram.sum = rpc.latency_sum_seconds();
      latency.samples.push_back(std::move(h));
    }
  }
  out->push_back(std::move(errors));
  out->push_back(std::move(latency));
}

}  // namespace

std::vector<MetricFamily> ServiceMetricFamilies(const v1::ServiceStatus& status) {
  std::vector<MetricFamily> out;
  out.push_back(Single("shardcast_ranks", MetricType::kGauge, "Loader ranks (world size).", status.world_size()));
  out.push_back(Single("shardcast_uptime_seconds", MetricType::kGauge, "Seconds since rank 0 started.",
                       status.uptime_seconds()));
  AddStates(status, &out);
  AddLoad(status, &out);
  AddMemoryAndRequests(status, &out);
  AddClients(status, &out);
  AddRpcs(status, &out);
  return out;
}

absl::StatusOr<std::string> RenderServiceMetrics(const v1::ServiceStatus& status) {
  return RenderMetrics(ServiceMetricFamilies(status));
}

}  // namespace shardcast
