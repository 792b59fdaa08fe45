// Logging for shardcastd and the libraries under it: one process-wide logger (Debian's spdlog,
// used header-only so no shared library travels to GPU hosts) behind a few functions, so that a
// call site is one line: `LogWarning("CUDA IPC lease ", id, " expired unreleased");`.
//
// Every line is "<UTC time> [<prefix>]: <level>: <message>", e.g.
//   2026-12-02T14:39:34.475Z [shardcastd rank 1]: error: loading failed: ...
// The prefix is "shardcastd" until InitLogging() names the rank. The threshold comes from
// `--log-level` or the SHARDCAST_LOG_LEVEL environment variable (debug|info|warning|error|off;
// default info). spdlog stays inside log.cc: this header pulls in only Abseil.
#ifndef SHARDCAST_COMMON_LOG_H_
#define SHARDCAST_COMMON_LOG_H_

#include <ostream>

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

struct LogOptions {
  std::string prefix = "shardcastd";  // shown in brackets, e.g. "shardcastd rank 3"
  LogLevel level = LogLevel::kInfo;
  // Where lines go: nullptr is stderr (flushed after each line). Tests pass a stream; it must
  // outlive its use, i.e. until the next InitLogging().
  std::ostream* out = nullptr;
};

// Replaces the prefix, threshold and destination. Safe to call again at any time, also while
// other threads log.
void InitLogging(const LogOptions& options);

bool LogEnabled(LogLevel level);
void LogMessage(LogLevel level, absl::string_view message);

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
