// The Prometheus text exposition format (version 0.0.4), written by hand (prometheus-cpp is not a
// Debian package): metric families with their HELP and TYPE lines, samples with escaped label
// values, counters, gauges and histograms (`_bucket{le=...}`, `_sum`, `_count`). Pure: no I/O, no
// registry; the caller builds families from what it knows and renders them at each scrape.
#ifndef SHARDCAST_SERVER_METRICS_TEXT_H_
#define SHARDCAST_SERVER_METRICS_TEXT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shardcast {

enum class MetricType { kCounter, kGauge, kHistogram };

using MetricLabels = std::vector<std::pair<std::string, std::string>>;  // name, value (any text)

// A histogram's state: `bounds` are the finite upper bounds, ascending; `counts[i]` observations
// in (bounds[i-1], bounds[i]] and counts[bounds.size()] those above the last bound (+Inf), i.e.
// NOT cumulative: rendering accumulates them.
struct HistogramValue {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // bounds.size() + 1 entries
  double sum = 0;
};

struct MetricSample {
  MetricLabels labels;
  double value = 0;          // counters and gauges
  HistogramValue histogram;  // histograms
};

struct MetricFamily {
  std::string name;  // [a-zA-Z_:][a-zA-Z0-9_:]*
  MetricType type = MetricType::kGauge;
  std::string help;
  std::vector<MetricSample> samples;
};

// Formats a sample value as Prometheus does: integers exactly, others shortest round-trip,
// "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double value);
// A label value inside its double quotes: backslash, double quote and newline escaped.
std::string EscapeLabelValue(absl::string_view value);
// HELP text: backslash and newline escaped.
std::string EscapeHelp(absl::string_view help);

// The whole exposition, one family after another. InvalidArgument (naming it) for a bad metric
// or label name, a label named `le` on a histogram, a duplicate family, or a histogram whose
// bounds are not ascending or whose counts do not match them: a bug in the caller, never output
// a scraper would reject.
absl::StatusOr<std::string> RenderMetrics(const std::vector<MetricFamily>& families);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_METRICS_TEXT_H_
