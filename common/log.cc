// The logger behind common/log.h: spdlog's sinks and pattern formatter (UTC time, level) under a
// configuration that InitLogging() swaps whole (sink, format, level) while other threads log: a
// line is built and written under the one configuration it read, so it is never half text, half
// JSON. Lines are written under one process-wide lock, not the sink's own: two configurations may
// name the same stream (a re-initialisation while a thread still holds the old snapshot), and a
// per-sink lock would let both write to it at once. The JSON format is a pattern whose message
// part (%v) we write ourselves, escaped.
#include "common/log.h"

#include <cstdlib>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "common/json.h"
#include "spdlog/details/log_msg.h"
#include "spdlog/pattern_formatter.h"
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

// '%' starts a pattern flag: everything we put in a pattern is literal text.
std::string Literal(absl::string_view text) { return absl::StrReplaceAll(text, {{"%", "%%"}}); }

std::string Pattern(const LogOptions& o) {
  if (o.format == LogFormat::kText) {
    return absl::StrCat("%Y-%m-%dT%H:%M:%S.%eZ [", Literal(o.prefix), "]: %l: %v");
  }
  std::string who;
  if (o.rank >= 0) {
    who = absl::StrCat("\"rank\":", o.rank);
  } else {
    who = "\"prefix\":";
    AppendJsonString(&who, o.prefix);
  }
  return absl::StrCat(R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l",)", Literal(who), ",%v}");
}

// A value in text format: bare when it is plain printable ASCII without ' ', '"' or '=', else
// JSON-quoted (which also escapes control bytes and invalid UTF-8).
void AppendTextValue(std::string* out, const LogField& f) {
  bool plain = f.is_raw() || !f.value().empty();
  for (char c : f.value()) {
    if (c <= ' ' || c > '~' || c == '"' || c == '=') plain = false;
  }
  if (plain) {
    out->append(f.value());
  } else {
    AppendJsonString(out, f.value());
  }
}

// The %v part of a line: the message and fields as text, or the JSON members after "rank".
std::string Body(LogFormat format, absl::string_view message, std::initializer_list<LogField> fields) {
  std::string out;
  if (format == LogFormat::kText) {
    out.append(message.data(), message.size());
    for (const LogField& f : fields) {
      absl::StrAppend(&out, " ", f.key(), "=");
      AppendTextValue(&out, f);
    }
    return out;
  }
  out = "\"msg\":";
  AppendJsonString(&out, message);
  for (const LogField& f : fields) {
    out.push_back(',');
    AppendJsonString(&out, f.key());
    out.push_back(':');
    if (f.is_raw()) {
      out.append(f.value());
    } else {
      AppendJsonString(&out, f.value());
    }
  }
  return out;
}

// What one InitLogging() call set up; lines take a snapshot and use it alone.
struct Config {
  LogFormat format = LogFormat::kText;
  spdlog::sink_ptr sink;
};

struct Logger {
  Logger() { Configure(LogOptions()); }

  void Configure(const LogOptions& o) {
    auto config = std::make_shared<Config>();
    config->format = o.format;
    if (o.out == nullptr) {
      config->sink = std::make_shared<spdlog::sinks::stderr_sink_st>();
    } else {
      config->sink = std::make_shared<spdlog::sinks::ostream_sink_st>(*o.out, /*force_flush=*/true);
    }
    config->sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(Pattern(o), spdlog::pattern_time_type::utc));
    std::lock_guard<std::mutex> lock(mu);
    current = std::move(config);
    level.store(ToSpdlog(o.level));
  }

  std::shared_ptr<const Config> Snapshot() {
    std::lock_guard<std::mutex> lock(mu);
    return current;
  }

  std::mutex mu;
  std::shared_ptr<const Config> current;  // guarded by mu
  std::atomic<spdlog::level::level_enum> level{spdlog::level::info};
};

Logger& TheLogger() {
  static Logger* const logger = new Logger();  // never destroyed: threads may log during exit
  return *logger;
}

void Write(LogLevel level, absl::string_view message, std::initializer_list<LogField> fields) {
  if (level == LogLevel::kOff) return;
  const std::shared_ptr<const Config> config = TheLogger().Snapshot();
  const std::string body = Body(config->format, message, fields);
  const spdlog::details::log_msg msg(spdlog::source_loc{}, "shardcast", ToSpdlog(level),
                                     spdlog::string_view_t(body.data(), body.size()));
  static std::mutex* const write_mu = new std::mutex();  // see the file comment; never destroyed
  std::lock_guard<std::mutex> lock(*write_mu);
  config->sink->log(msg);
  config->sink->flush();
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

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "text") return LogFormat::kText;
  if (n == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(absl::StrCat("unknown log format '", name.substr(0, 40), "' (text or json)"));
}

absl::StatusOr<LogFormat> LogFormatFromFlagOrEnv(absl::string_view flag_value) {
  const char* env = std::getenv("SHARDCAST_LOG_FORMAT");
  const bool from_flag = !flag_value.empty();
  if (!from_flag && (env == nullptr || *env == '\0')) return LogFormat::kText;
  absl::StatusOr<LogFormat> f = ParseLogFormat(from_flag ? flag_value : env);
  if (!f.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(from_flag ? "--log-format: " : "SHARDCAST_LOG_FORMAT: ", f.status().message()));
  }
  return f;
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

bool LogEnabled(LogLevel level) {
  return level != LogLevel::kOff && ToSpdlog(level) >= TheLogger().level.load();
}

void LogMessage(LogLevel level, absl::string_view message) { Write(level, message, {}); }

void LogEvent(LogLevel level, absl::string_view message, std::initializer_list<LogField> fields) {
  if (LogEnabled(level)) Write(level, message, fields);
}

}  // namespace shardcast
