// RenderMetrics against the rules of the Prometheus text format 0.0.4: HELP/TYPE lines, escaping
// of label values and help, value formatting, histograms' cumulative buckets, and refusals of
// what a scraper would reject.
#include "server/metrics_text.h"

#include <cmath>
#include <limits>

#include "common/status_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

using ::testing::HasSubstr;

TEST(FormatMetricValue, IntegersExactAndSpecialValuesSpelledAsPrometheus) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(123456789012), "123456789012");
  EXPECT_EQ(FormatMetricValue(-3), "-3");
  EXPECT_EQ(FormatMetricValue(0.25), "0.25");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(std::strtod(FormatMetricValue(1.0 / 3).c_str(), nullptr), 1.0 / 3);
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
}

TEST(EscapeLabelValue, EscapesBackslashQuoteAndNewlineOnly) {
  EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd\te"), "a\\\\b\\\"c\\nd\te");
  EXPECT_EQ(EscapeHelp("a\\b\"c\nd"), "a\\\\b\"c\\nd");  // HELP keeps double quotes
}

TEST(RenderMetrics, CounterAndGaugeWithHelpTypeAndLabels) {
  std::vector<MetricFamily> f = {
      {"shardcast_bytes_read_total", MetricType::kCounter, "Bytes read.\nAll of them.",
       {{{{"rank", "0"}}, 10}, {{{"rank", "1"}}, 20}}},
      {"shardcast_up", MetricType::kGauge, "Up.", {{{}, 1}}},
  };
  SC_ASSERT_OK_AND_ASSIGN(std::string text, RenderMetrics(f));
  EXPECT_EQ(text,
            "# HELP shardcast_bytes_read_total Bytes read.\\nAll of them.\n"
            "# TYPE shardcast_bytes_read_total counter\n"
            "shardcast_bytes_read_total{rank=\"0\"} 10\n"
            "shardcast_bytes_read_total{rank=\"1\"} 20\n"
            "# HELP shardcast_up Up.\n"
            "# TYPE shardcast_up gauge\n"
            "shardcast_up 1\n");
}

TEST(RenderMetrics, LabelValuesAreEscaped) {
  std::vector<MetricFamily> f = {{"m", MetricType::kGauge, "h", {{{{"path", "C:\\x\"y\"\nz"}}, 1}}}};
  SC_ASSERT_OK_AND_ASSIGN(std::string text, RenderMetrics(f));
  EXPECT_THAT(text, HasSubstr("m{path=\"C:\\\\x\\\"y\\\"\\nz\"} 1\n"));
}

TEST(RenderMetrics, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricSample s;
  s.labels = {{"method", "Fetch"}};
  s.histogram = {{0.1, 1}, {2, 3, 4}, 7.5};
  std::vector<MetricFamily> f = {{"lat_seconds", MetricType::kHistogram, "Latency.", {s}}};
  SC_ASSERT_OK_AND_ASSIGN(std::string text, RenderMetrics(f));
  EXPECT_EQ(text,
            "# HELP lat_seconds Latency.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{method=\"Fetch\",le=\"0.1\"} 2\n"
            "lat_seconds_bucket{method=\"Fetch\",le=\"1\"} 5\n"
            "lat_seconds_bucket{method=\"Fetch\",le=\"+Inf\"} 9\n"
            "lat_seconds_sum{method=\"Fetch\"} 7.5\n"
            "lat_seconds_count{method=\"Fetch\"} 9\n");
}

TEST(RenderMetrics, RefusesWhatAScraperWouldReject) {
  auto refused = [](std::vector<MetricFamily> f, const std::string& why) {
    absl::StatusOr<std::string> r = RenderMetrics(f);
    ASSERT_FALSE(r.ok()) << why;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << why;
  };
  refused({{"1abc", MetricType::kGauge, "h", {}}}, "name starts with a digit");
  refused({{"a-b", MetricType::kGauge, "h", {}}}, "dash in a name");
  refused({{"m", MetricType::kGauge, "h", {{{{"a:b", "x"}}, 1}}}}, "colon in a label name");
  refused({{"m", MetricType::kGauge, "h", {{{{"__x", "x"}}, 1}}}}, "reserved label prefix");
  refused({{"m", MetricType::kGauge, "h", {{{{"a", "x"}, {"a", "y"}}, 1}}}}, "duplicate label");
  refused({{"m", MetricType::kGauge, "h", {}}, {"m", MetricType::kGauge, "h", {}}}, "duplicate family");
  MetricSample le;
  le.labels = {{"le", "1"}};
  le.histogram = {{1}, {0, 0}, 0};
  refused({{"h", MetricType::kHistogram, "h", {le}}}, "le label on a histogram");
  MetricSample bad_counts;
  bad_counts.histogram = {{1, 2}, {0, 0}, 0};
  refused({{"h", MetricType::kHistogram, "h", {bad_counts}}}, "counts do not match bounds");
  MetricSample unsorted;
  unsorted.histogram = {{2, 1}, {0, 0, 0}, 0};
  refused({{"h", MetricType::kHistogram, "h", {unsorted}}}, "bounds not ascending");
}

}  // namespace
}  // namespace shardcast
