// The service's metrics as Prometheus text: rank 0 renders what it already polls (the
// ServiceStatus from the coordinator, with every rank's RankState, counters and RPC stats), one
// series per rank labelled rank="N". Pure: a message in, text out (server/metrics_text).
#ifndef SHARDCAST_SERVER_SERVICE_METRICS_H_
#define SHARDCAST_SERVER_SERVICE_METRICS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/shardcast/v1/shardcast.pb.h"
#include "server/metrics_text.h"

namespace shardcast {

// Every shardcast_* family (README lists them), built from `status`.
std::vector<MetricFamily> ServiceMetricFamilies(const v1::ServiceStatus& status);

// RenderMetrics(ServiceMetricFamilies(status)).
absl::StatusOr<std::string> RenderServiceMetrics(const v1::ServiceStatus& status);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_SERVICE_METRICS_H_
