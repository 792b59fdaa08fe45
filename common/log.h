// Logging for shardcastd and the libraries under it: one process-wide logger (Debian's spdlog,
// used header-only so no shared library travels to GPU hosts) behind a few functions, so that a
// call site is one line: `LogWarning("CUDA IPC lease ", id, " expired unreleased");`.
//
// Every line is "<UTC time> [<prefix>]: <level>: <message>", e.g.
//   2026-12-02T14:39:34.475Z [shardcastd rank 1]: error: loading failed: ...
// The prefix is "shardcastd" until InitLogging() names the rank. The threshold comes from
// `--log-level` or the SHARDCAST_LOG_LEVEL environment variable (debug|info|warning|error|off;
// default info). spdlog stays inside log.cc: this header pulls in only Abseil.
//
// `--log-format json` (or SHARDCAST_LOG_FORMAT=json) writes one JSON object per line instead:
//   {"ts":"2026-12-02T14:39:34.475Z","level":"error","rank":1,"msg":"loading failed: ..."}
// ("prefix":"shardcastd" until a rank is known), plus the fields of a LogEvent() call. Every line
// is valid UTF-8 JSON whatever bytes the message holds (common/json.h's string writer). In text
// format the fields follow the message as ` key=value` (strings JSON-quoted when they hold a
// space, a quote, '=' or a byte that is not printable ASCII).
#ifndef SHARDCAST_COMMON_LOG_H_
#define SHARDCAST_COMMON_LOG_H_

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace shardcast {

enum class LogLevel { kDebug, kInfo, kWarning, kError, kOff };

// "debug", "info", "warning" (or "warn"), "error", "off"; anything else is INVALID_ARGUMENT.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);
absl::string_view LogLevelName(LogLevel level);

// `flag_value` when not empty, else $SHARDCAST_LOG_LEVEL when set and not empty, else kInfo.
// An unknown name is INVALID_ARGUMENT naming where it came from.
absl::StatusOr<LogLevel> LogLevelFromFlagOrEnv(absl::string_view flag_value);

enum class LogFormat { kText, kJson };

// "text" or "json"; anything else is INVALID_ARGUMENT.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);

// `flag_value` when not empty, else $SHARDCAST_LOG_FORMAT when set and not empty, else kText.
absl::StatusOr<LogFormat> LogFormatFromFlagOrEnv(absl::string_view flag_value);

struct LogOptions {
  std::string prefix = "shardcastd";  // shown in brackets, e.g. "shardcastd rank 3"
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kText;
  // JSON lines carry "rank": N when rank >= 0, else "prefix": `prefix`.
  int rank = -1;
  // Where lines go: nullptr is stderr (flushed after each line). Tests pass a stream; it must
  // outlive its use, i.e. until the next InitLogging().
  std::ostream* out = nullptr;
};

// Replaces the prefix, threshold and destination. Safe to call again at any time, also while
// other threads log.
void InitLogging(const LogOptions& options);

bool LogEnabled(LogLevel level);
void LogMessage(LogLevel level, absl::string_view message);

// One named value of a structured line: an integer, a bool (both written bare in JSON) or a
// string (kept as given; escaped when written).
class LogField {
 public:
  template <typename T, typename std::enable_if<std::is_integral<T>::value && !std::is_same<T, bool>::value, int>::type = 0>
  LogField(absl::string_view key, T value) : key_(key), raw_(true), value_(absl::StrCat(value)) {}
  LogField(absl::string_view key, bool value) : key_(key), raw_(true), value_(value ? "true" : "false") {}
  LogField(absl::string_view key, absl::string_view value) : key_(key), raw_(false), value_(value) {}
  LogField(absl::string_view key, const char* value) : key_(key), raw_(false), value_(value) {}
  LogField(absl::string_view key, const std::string& value) : key_(key), raw_(false), value_(value) {}

  absl::string_view key() const { return key_; }
  bool is_raw() const { return raw_; }  // an integer or bool: no quotes in JSON
  const std::string& value() const { return value_; }

 private:
  std::string key_;
  bool raw_;
  std::string value_;
};

// A line with fields, e.g. LogEvent(LogLevel::kInfo, "transfer finished", {{"bytes", n}, {"ok", true}}).
// Field keys should be short lowercase words; "ts", "level", "rank", "prefix" and "msg" are taken.
void LogEvent(LogLevel level, absl::string_view message, std::initializer_list<LogField> fields);

// The arguments are joined with absl::StrCat, only when the level is enabled.
template <typename... Args>
void LogDebug(const Args&... args) {
  if (LogEnabled(LogLevel::kDebug)) LogMessage(LogLevel::kDebug, absl::StrCat(args...));
}
template <typename... Args>
void LogInfo(const Args&... args) {
  if (LogEnabled(LogLevel::kInfo)) LogMessage(LogLevel::kInfo, absl::StrCat(args...));
}
template <typename... Args>
void LogWarning(const Args&... args) {
  if (LogEnabled(LogLevel::kWarning)) LogMessage(LogLevel::kWarning, absl::StrCat(args...));
}
template <typename... Args>
void LogError(const Args&... args) {
  if (LogEnabled(LogLevel::kError)) LogMessage(LogLevel::kError, absl::StrCat(args...));
}

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_LOG_H_
