#include "common/log.h"

#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/json.h"
#include "gtest/gtest.h"
#include "re2/re2.h"

namespace shardcast {
namespace {

// Routes the logger to a stream for one test; stderr again afterwards.
class LogTest : public ::testing::Test {
 protected:
  void Capture(const std::string& prefix, LogLevel level) {
    LogOptions o;
    o.prefix = prefix;
    o.level = level;
    o.out = &out_;
    InitLogging(o);
  }
  void CaptureJson(int rank, LogLevel level) {
    LogOptions o;
    o.prefix = "shardcastd rank x";
    o.level = level;
    o.format = LogFormat::kJson;
    o.rank = rank;
    o.out = &out_;
    InitLogging(o);
  }
  // Every line parsed as JSON (a parse failure fails the test).
  std::vector<Json> JsonLines() const {
    std::vector<Json> out;
    for (const std::string& l : Lines()) {
      absl::StatusOr<Json> j = Json::Parse(l);
      EXPECT_TRUE(j.ok()) << j.status() << " in " << l;
      if (j.ok()) out.push_back(*std::move(j));
    }
    return out;
  }
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
      LogOptions b;
      b.prefix = "b";
      b.level = LogLevel::kError;
      b.out = &other;
      InitLogging(b);  // warnings dropped while this holds
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

TEST_F(LogTest, JsonLineHasTimeLevelRankAndMessage) {
  CaptureJson(3, LogLevel::kInfo);
  LogError("loading failed: ", 42, " bytes");
  ASSERT_EQ(Lines().size(), 1u);
  const std::vector<Json> lines = JsonLines();
  ASSERT_EQ(lines.size(), 1u);
  const Json& j = lines[0];
  ASSERT_TRUE(j.is_object());
  ASSERT_NE(j.Find("ts"), nullptr);
  EXPECT_TRUE(RE2::FullMatch(j.Find("ts")->as_string(), R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"))
      << j.Find("ts")->as_string();
  EXPECT_EQ(j.Find("level")->as_string(), "error");
  ASSERT_TRUE(j.Find("rank")->is_integer());
  EXPECT_EQ(j.Find("rank")->as_int(), 3);
  EXPECT_EQ(j.Find("msg")->as_string(), "loading failed: 42 bytes");
  EXPECT_EQ(j.Find("prefix"), nullptr);
}

TEST_F(LogTest, JsonLineWithoutRankCarriesThePrefix) {
  CaptureJson(-1, LogLevel::kInfo);
  LogWarning("w");
  const std::vector<Json> lines = JsonLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].Find("rank"), nullptr);
  EXPECT_EQ(lines[0].Find("prefix")->as_string(), "shardcastd rank x");
  EXPECT_EQ(lines[0].Find("level")->as_string(), "warning");
}

TEST_F(LogTest, JsonFieldsKeepTheirTypes) {
  CaptureJson(0, LogLevel::kInfo);
  LogEvent(LogLevel::kInfo, "transfer finished",
           {{"transport", "stream"}, {"bytes", uint64_t{1} << 40}, {"ms", -5}, {"ok", true}, {"peer", std::string("ipv4:1")}});
  const std::vector<Json> lines = JsonLines();
  ASSERT_EQ(lines.size(), 1u);
  const Json& j = lines[0];
  EXPECT_EQ(j.Find("msg")->as_string(), "transfer finished");
  EXPECT_EQ(j.Find("transport")->as_string(), "stream");
  ASSERT_TRUE(j.Find("bytes")->is_integer());
  EXPECT_EQ(j.Find("bytes")->as_uint(), uint64_t{1} << 40);
  EXPECT_EQ(j.Find("ms")->as_int(), -5);
  ASSERT_EQ(j.Find("ok")->type(), Json::Type::kBool);
  EXPECT_TRUE(j.Find("ok")->as_bool());
  EXPECT_EQ(j.Find("peer")->as_string(), "ipv4:1");
  // Members come in order: the fixed ones, then the fields as given.
  ASSERT_EQ(j.members().size(), 9u);
  EXPECT_EQ(j.members()[4].first, "transport");
}

TEST_F(LogTest, JsonEscapesQuotesControlBytesPercentAndInvalidUtf8) {
  CaptureJson(1, LogLevel::kInfo);
  const std::string clean = "a\"b\\c\nd\re\x01f\x7f%v%%{}";
  const std::string hostile = clean + "\xff\xc3(g" + std::string(1, '\0') + "h";
  LogEvent(LogLevel::kWarning, hostile, {{"layout", hostile}});
  const std::vector<std::string> raw = Lines();
  ASSERT_EQ(raw.size(), 1u) << out_.str();  // the newline inside stayed escaped: one line
  const std::vector<Json> lines = JsonLines();
  ASSERT_EQ(lines.size(), 1u);
  const std::string msg = lines[0].Find("msg")->as_string();
  EXPECT_EQ(msg, lines[0].Find("layout")->as_string());
  // Printable and escaped bytes come back as they were; invalid UTF-8 becomes U+FFFD.
  EXPECT_EQ(msg.substr(0, clean.size()), clean);
  EXPECT_EQ(msg.find('\xff'), std::string::npos);
  EXPECT_NE(msg.find("\xEF\xBF\xBD"), std::string::npos) << msg;
  EXPECT_NE(msg.find('h'), std::string::npos);
}

TEST_F(LogTest, JsonThresholdStillFilters) {
  CaptureJson(2, LogLevel::kWarning);
  LogInfo("i");
  LogEvent(LogLevel::kInfo, "event", {{"n", 1}});
  LogEvent(LogLevel::kError, "bad", {{"code", "NOT_FOUND"}});
  LogDebug("d");
  const std::vector<Json> lines = JsonLines();
  ASSERT_EQ(lines.size(), 1u) << out_.str();
  EXPECT_EQ(lines[0].Find("msg")->as_string(), "bad");
  EXPECT_EQ(lines[0].Find("level")->as_string(), "error");
}

TEST_F(LogTest, TextFieldsFollowTheMessageQuotedWhenNeeded) {
  Capture("p", LogLevel::kInfo);
  LogEvent(LogLevel::kInfo, "manifest served", {{"tp", 2}, {"peer", "ipv4:127.0.0.1:5"}, {"why", "a b\n"}, {"e", ""}});
  ASSERT_EQ(Lines().size(), 1u) << out_.str();
  EXPECT_NE(Lines()[0].find(R"(]: info: manifest served tp=2 peer=ipv4:127.0.0.1:5 why="a b\n" e="")"), std::string::npos)
      << Lines()[0];
}

TEST(LogFormat, FlagWinsOverEnvironmentWhichWinsOverDefault) {
  unsetenv("SHARDCAST_LOG_FORMAT");
  EXPECT_EQ(*LogFormatFromFlagOrEnv(""), LogFormat::kText);
  setenv("SHARDCAST_LOG_FORMAT", "JSON", 1);
  EXPECT_EQ(*LogFormatFromFlagOrEnv(""), LogFormat::kJson);
  EXPECT_EQ(*LogFormatFromFlagOrEnv("text"), LogFormat::kText);
  setenv("SHARDCAST_LOG_FORMAT", "xml", 1);
  absl::StatusOr<LogFormat> bad = LogFormatFromFlagOrEnv("");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("SHARDCAST_LOG_FORMAT: unknown log format 'xml'"), std::string::npos)
      << bad.status();
  EXPECT_NE(LogFormatFromFlagOrEnv("yaml").status().message().find("--log-format"), std::string::npos);
  unsetenv("SHARDCAST_LOG_FORMAT");
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
