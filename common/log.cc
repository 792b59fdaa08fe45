// The logger behind common/log.h: one spdlog logger whose only sink is a dist_sink, so that
// InitLogging() can swap the destination (stderr or a test's stream) while other threads log.
#include "common/log.h"

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "spdlog/logger.h"
#include "spdlog/sinks/dist_sink.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/sinks/stdout_sinks.h"

namespace shardcast {
namespace {

spdlog::level::level_enum ToSpdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return spdlog::level::debug;
    case LogLevel::kInfo: return spdlog::level::info;
    case LogLevel::kWarning: return spdlog::level::warn;
    case LogLevel::kError: return spdlog::level::err;
    case LogLevel::kOff: break;
  }
  return spdlog::level::off;
}

std::string Pattern(absl::string_view prefix) {
  // '%' starts a pattern flag: the prefix is literal text.
  return absl::StrCat("%Y-%m-%dT%H:%M:%S.%eZ [", absl::StrReplaceAll(prefix, {{"%", "%%"}}), "]: %l: %v");
}

struct Logger {
  Logger()
      : dist(std::make_shared<spdlog::sinks::dist_sink_mt>()),
        logger(std::make_shared<spdlog::logger>("shardcast", dist)) {
    Configure(LogOptions());
  }

  void Configure(const LogOptions& o) {
    spdlog::sink_ptr sink;
    if (o.out == nullptr) {
      sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    } else {
      sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*o.out, /*force_flush=*/true);
    }
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(Pattern(o.prefix), spdlog::pattern_time_type::utc));
    dist->set_sinks({sink});
    logger->set_level(ToSpdlog(o.level));
    logger->flush_on(spdlog::level::trace);
  }

  std::shared_ptr<spdlog::sinks::dist_sink_mt> dist;
  std::shared_ptr<spdlog::logger> logger;
};

Logger& TheLogger() {
  static Logger* const logger = new Logger();  // never destroyed: threads may log during exit
  return *logger;
}

}  // namespace

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "debug") return LogLevel::kDebug;
  if (n == "info") return LogLevel::kInfo;
  if (n == "warning" || n == "warn") return LogLevel::kWarning;
  if (n == "error") return LogLevel::kError;
  if (n == "off") return LogLevel::kOff;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level '", name.substr(0, 40), "' (debug, info, warning, error or off)"));
}

absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: break;
  }
  return "off";
}

absl::StatusOr<LogLevel> LogLevelFromFlagOrEnv(absl::string_view flag_value) {
  if (!flag_value.empty()) {
    absl::StatusOr<LogLevel> l = ParseLogLevel(flag_value);
    if (!l.ok()) return absl::InvalidArgumentError(absl::StrCat("--log-level: ", l.status().message()));
    return l;
  }
  const char* env = std::getenv("SHARDCAST_LOG_LEVEL");
  if (env == nullptr || *env == '\0') return LogLevel::kInfo;
  absl::StatusOr<LogLevel> l = ParseLogLevel(env);
  if (!l.ok()) return absl::InvalidArgumentError(absl::StrCat("SHARDCAST_LOG_LEVEL: ", l.status().message()));
  return l;
}

void InitLogging(const LogOptions& options) { TheLogger().Configure(options); }

bool LogEnabled(LogLevel level) { return level != LogLevel::kOff && TheLogger().logger->should_log(ToSpdlog(level)); }

void LogMessage(LogLevel level, absl::string_view message) {
  if (level == LogLevel::kOff) return;
  TheLogger().logger->log(ToSpdlog(level), spdlog::string_view_t(message.data(), message.size()));
}

}  // namespace shardcast
