#include "server/startup_timeline.h"

#include <thread>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(StartupTimelineTest, MarksMeasureFromThePreviousMarkInOrder) {
  StartupTimeline t(StartupTimeline::Clock::now());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  t.Mark("first");
  t.Add("beside", 7.5);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  t.Mark("second");
  const auto steps = t.steps();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(steps[0].first, "first");
  EXPECT_GE(steps[0].second, 19.0);
  EXPECT_EQ(steps[1].first, "beside");
  EXPECT_DOUBLE_EQ(steps[1].second, 7.5);
  EXPECT_EQ(steps[2].first, "second");
  EXPECT_GE(steps[2].second, 9.0);
  EXPECT_LT(steps[2].second, steps[0].second + 1000);  // from "first", not from the start
  EXPECT_GE(t.total_ms(), steps[0].second + steps[2].second - 0.01);
  EXPECT_EQ(t.Summary().rfind("first ", 0), 0u);
  EXPECT_NE(t.Summary().find(", beside 7.5 ms, second "), std::string::npos);
}

TEST(StartupTimelineTest, TheDefaultStartsBeforeMain) {
  StartupTimeline t;
  t.Mark("now");
  EXPECT_GT(t.steps()[0].second, 0.0);
}

}  // namespace
}  // namespace shardcast
