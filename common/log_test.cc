#include "common/log.h"

#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "re2/re2.h"

namespace shardcast {
namespace {

// Routes the logger to a stream for one test; stderr again afterwards.
class LogTest : public ::testing::Test {
 protected:
  void Capture(const std::string& prefix, LogLevel level) { InitLogging({prefix, level, &out_}); }
  void TearDown() override { InitLogging(LogOptions()); }
  std::vector<std::string> Lines() const { return absl::StrSplit(out_.str(), '\n', absl::SkipEmpty()); }

  std::ostringstream out_;
};

TEST_F(LogTest, LineHasUtcTimePrefixLevelAndMessage) {
  Capture("shardcastd rank 3", LogLevel::kInfo);
  LogError("loading failed: ", 42, " bytes");
  ASSERT_EQ(Lines().size(), 1u);
  EXPECT_TRUE(RE2::FullMatch(Lines()[0], R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[shardcastd rank 3\]: error: loading failed: 42 bytes)"))
      << Lines()[0];
  // fault_matrix_test finds a rank's fatal error by this text.
  EXPECT_NE(Lines()[0].find(": error: "), std::string::npos);
}

TEST_F(LogTest, ThresholdDropsLowerLevelsAndSkipsFormatting) {
  Capture("p", LogLevel::kWarning);
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogEnabled(LogLevel::kWarning));
  LogDebug("d");
  LogInfo("i");
  LogWarning("w");
  LogError("e");
  const std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 2u) << out_.str();
  EXPECT_NE(lines[0].find("]: warning: w"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("]: error: e"), std::string::npos) << lines[1];
}

TEST_F(LogTest, OffSilencesEverything) {
  Capture("p", LogLevel::kOff);
  LogError("e");
  LogMessage(LogLevel::kOff, "never");
  EXPECT_EQ(out_.str(), "");
}

TEST_F(LogTest, PercentInPrefixAndMessageIsLiteral) {
  Capture("rank %v 100%", LogLevel::kInfo);
  LogInfo("50% {} done");
  ASSERT_EQ(Lines().size(), 1u);
  EXPECT_NE(Lines()[0].find("[rank %v 100%]: info: 50% {} done"), std::string::npos) << Lines()[0];
}

TEST_F(LogTest, ConcurrentLinesStayWhole) {
  Capture("p", LogLevel::kInfo);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 200; ++i) LogInfo("thread ", t, " line ", i, " end");
    });
  }
  for (std::thread& th : threads) th.join();
  const std::vector<std::string> lines = Lines();
  ASSERT_EQ(lines.size(), 800u);
  for (const std::string& l : lines) EXPECT_TRUE(RE2::PartialMatch(l, R"(: info: thread \d line \d+ end$)")) << l;
}

TEST_F(LogTest, ReinitializingWhileOthersLogIsSafe) {
  std::ostringstream other;
  Capture("a", LogLevel::kInfo);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < 300; ++i) LogWarning("thread ", t, " line ", i, " end");
    });
  }
  for (int k = 0; k < 200; ++k) {
    if (k % 2) {
      InitLogging({"b", LogLevel::kError, &other});  // warnings dropped while this holds
    } else {
      Capture("a", LogLevel::kInfo);
    }
  }
  for (std::thread& th : threads) th.join();
  Capture("a", LogLevel::kInfo);  // `other` is no longer written once this returns
  // Every line is whole and carries the prefix it was written under.
  for (const std::string& l : Lines()) EXPECT_TRUE(RE2::PartialMatch(l, R"(\[a\]: warning: thread \d line \d+ end$)")) << l;
  // A line that passed the level check just before a switch may land in `other`, whole.
  const std::vector<std::string> moved = absl::StrSplit(other.str(), '\n', absl::SkipEmpty());
  for (const std::string& l : moved) EXPECT_TRUE(RE2::PartialMatch(l, R"(\[b\]: warning: thread \d line \d+ end$)")) << l;
  EXPECT_LE(Lines().size() + moved.size(), 900u);
}

TEST(LogLevel, ParsesNamesAndRefusesOthers) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("WARN"), LogLevel::kWarning);
  EXPECT_EQ(*ParseLogLevel("warning"), LogLevel::kWarning);
  EXPECT_EQ(*ParseLogLevel("off"), LogLevel::kOff);
  EXPECT_EQ(LogLevelName(*ParseLogLevel("Error")), "error");
  absl::StatusOr<LogLevel> bad = ParseLogLevel("verbose");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'verbose'"), std::string::npos) << bad.status();
}

TEST(LogLevel, FlagWinsOverEnvironmentWhichWinsOverDefault) {
  unsetenv("SHARDCAST_LOG_LEVEL");
  EXPECT_EQ(*LogLevelFromFlagOrEnv(""), LogLevel::kInfo);
  setenv("SHARDCAST_LOG_LEVEL", "error", 1);
  EXPECT_EQ(*LogLevelFromFlagOrEnv(""), LogLevel::kError);
  EXPECT_EQ(*LogLevelFromFlagOrEnv("debug"), LogLevel::kDebug);
  setenv("SHARDCAST_LOG_LEVEL", "loud", 1);
  absl::StatusOr<LogLevel> bad = LogLevelFromFlagOrEnv("");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("SHARDCAST_LOG_LEVEL"), std::string::npos) << bad.status();
  EXPECT_NE(LogLevelFromFlagOrEnv("loud").status().message().find("--log-level"), std::string::npos);
  unsetenv("SHARDCAST_LOG_LEVEL");
}

}  // namespace
}  // namespace shardcast
