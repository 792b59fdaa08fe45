// RenderServiceMetrics: every rank's numbers appear under rank="N" with the right values, states
// as 0/1 gauges, errors only for codes that occurred (named), histograms from each rank's RPC
// stats; a rank's malformed histogram is left out instead of failing the scrape.
#include "server/service_metrics.h"

#include "common/status_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::ServiceStatus TwoRanks() {
  v1::ServiceStatus s;
  s.set_state("ready");
  s.set_world_size(2);
  s.set_manifests_served(3);
  for (int rank = 0; rank < 2; ++rank) {
    v1::RankState* r = s.add_ranks();
    r->set_rank(rank);
    r->set_state(rank == 0 ? "ready" : "loading");
    r->set_bytes_read(1000 + rank);
    r->set_bytes_selected(900 + rank);
    r->set_payload_bytes_done(800 + rank);
    r->set_memory_held(5000);
    r->set_memory_budget(1 << 20);
    r->set_requests_prepared(4);
    r->set_requests_cached(2);
    r->set_requests_evicted(2);
    r->set_clients_served(7 + rank);
    r->set_bytes_sent_stream(12345);
    r->set_bytes_sent_nccl(rank);
    v1::RpcStats* rpc = r->add_rpcs();
    rpc->set_method("Fetch");
    for (int code = 0; code < 17; ++code) rpc->add_calls_by_code(code == 0 ? 5 : code == 5 ? 2 : 0);
    rpc->add_latency_bounds(0.1);
    rpc->add_latency_bounds(1);
    rpc->add_latency_counts(3);
    rpc->add_latency_counts(3);
    rpc->add_latency_counts(1);
    rpc->set_latency_sum_seconds(2.5);
  }
  return s;
}

TEST(ServiceMetrics, EveryRanksCountersAppearLabelled) {
  SC_ASSERT_OK_AND_ASSIGN(std::string text, RenderServiceMetrics(TwoRanks()));
  EXPECT_THAT(text, HasSubstr("shardcast_ranks 2\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE shardcast_read_bytes_total counter\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_read_bytes_total{rank=\"0\"} 1000\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_read_bytes_total{rank=\"1\"} 1001\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_load_total_bytes{rank=\"1\"} 901\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_load_done_bytes{rank=\"1\"} 801\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_memory_budget_bytes{rank=\"0\"} 1048576\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_requests_evicted_total{rank=\"0\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_clients_served_total{rank=\"1\"} 8\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_sent_bytes_total{rank=\"0\",transport=\"stream\"} 12345\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_sent_bytes_total{rank=\"1\",transport=\"nccl\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_manifests_served_total 3\n"));
}

TEST(ServiceMetrics, StatesAreOneHotGauges) {
  SC_ASSERT_OK_AND_ASSIGN(std::string text, RenderServiceMetrics(TwoRanks()));
  EXPECT_THAT(text, HasSubstr("shardcast_service_state{state=\"ready\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_service_state{state=\"loading\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_rank_state{rank=\"1\",state=\"loading\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_rank_state{rank=\"1\",state=\"ready\"} 0\n"));
}

TEST(ServiceMetrics, ErrorsByCodeNameAndLatencyHistograms) {
  SC_ASSERT_OK_AND_ASSIGN(std::string text, RenderServiceMetrics(TwoRanks()));
  EXPECT_THAT(text, HasSubstr("shardcast_rpc_errors_total{rank=\"0\",method=\"Fetch\",code=\"NOT_FOUND\"} 2\n"));
  EXPECT_THAT(text, Not(HasSubstr("code=\"OK\"")));
  EXPECT_THAT(text, Not(HasSubstr("code=\"INTERNAL\"")));  // never happened: no series
  EXPECT_THAT(text, HasSubstr("shardcast_rpc_latency_seconds_bucket{rank=\"1\",method=\"Fetch\",le=\"1\"} 6\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_rpc_latency_seconds_bucket{rank=\"1\",method=\"Fetch\",le=\"+Inf\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_rpc_latency_seconds_count{rank=\"1\",method=\"Fetch\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("shardcast_rpc_latency_seconds_sum{rank=\"0\",method=\"Fetch\"} 2.5\n"));
}

TEST(ServiceMetrics, AMalformedHistogramIsLeftOutNotFatal) {
  v1::ServiceStatus s = TwoRanks();
  s.mutable_ranks(1)->mutable_rpcs(0)->add_latency_counts(9);  // one count too many
  SC_ASSERT_OK_AND_ASSIGN(std::string text, RenderServiceMetrics(s));
  EXPECT_THAT(text, HasSubstr("shardcast_rpc_latency_seconds_count{rank=\"0\",method=\"Fetch\"} 7\n"));
  EXPECT_THAT(text, Not(HasSubstr("shardcast_rpc_latency_seconds_count{rank=\"1\"")));
}

TEST(ServiceMetrics, NoRanksYetStillRenders) {
  v1::ServiceStatus s;
  s.set_state("loading");
  SC_ASSERT_OK_AND_ASSIGN(std::string text, RenderServiceMetrics(s));
  EXPECT_THAT(text, HasSubstr("shardcast_service_state{state=\"loading\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE shardcast_rpc_latency_seconds histogram\n"));
}

}  // namespace
}  // namespace shardcast
