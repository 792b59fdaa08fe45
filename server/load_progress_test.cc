// RankProgress / ServiceProgress: percent bounded by 100, ETA from the rate so far, unknown before
// the first byte, 0 once finished; the service sums bytes and waits for its slowest rank.
#include "server/load_progress.h"

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(LoadProgress, RankPercentAndEtaFromTheRateSoFar) {
  const LoadProgress p = RankProgress(250, 1000, 5.0, false);
  EXPECT_EQ(p.done, 250u);
  EXPECT_DOUBLE_EQ(p.percent, 25.0);
  EXPECT_DOUBLE_EQ(p.eta_seconds, 15.0);  // 750 bytes left at 50 B/s
}

TEST(LoadProgress, NothingDoneYetHasNoEta) {
  EXPECT_EQ(RankProgress(0, 1000, 3.0, false).eta_seconds, -1);
  EXPECT_EQ(RankProgress(0, 1000, 3.0, false).percent, 0);
  EXPECT_EQ(RankProgress(10, 1000, 0.0, false).eta_seconds, -1);
}

TEST(LoadProgress, NeverMoreThanTheTotal) {
  const LoadProgress p = RankProgress(5000, 1000, 1.0, false);
  EXPECT_EQ(p.done, 1000u);
  EXPECT_DOUBLE_EQ(p.percent, 100.0);
  EXPECT_EQ(p.eta_seconds, 0);
}

TEST(LoadProgress, FinishedIsHundredPercentEvenForAnEmptyRank) {
  const LoadProgress p = RankProgress(0, 0, 0.0, true);
  EXPECT_DOUBLE_EQ(p.percent, 100.0);
  EXPECT_EQ(p.eta_seconds, 0);
  EXPECT_EQ(RankProgress(400, 1000, 2.0, true).done, 1000u);
}

TEST(LoadProgress, ServiceSumsBytesAndTakesTheSlowestEta) {
  const LoadProgress s = ServiceProgress({RankProgress(500, 1000, 1.0, false), RankProgress(100, 1000, 1.0, false)});
  EXPECT_EQ(s.done, 600u);
  EXPECT_EQ(s.total, 2000u);
  EXPECT_DOUBLE_EQ(s.percent, 30.0);
  EXPECT_DOUBLE_EQ(s.eta_seconds, 9.0);  // the second rank: 900 bytes at 100 B/s
}

TEST(LoadProgress, ServiceEtaIsUnknownWhileARankHasNotStarted) {
  EXPECT_EQ(ServiceProgress({RankProgress(500, 1000, 1.0, false), RankProgress(0, 1000, 1.0, false)}).eta_seconds, -1);
  const LoadProgress done = ServiceProgress({RankProgress(0, 0, 0, true), RankProgress(7, 7, 1, true)});
  EXPECT_DOUBLE_EQ(done.percent, 100.0);
  EXPECT_EQ(done.eta_seconds, 0);
}

}  // namespace
}  // namespace shardcast
