// Prometheus text format 0.0.4 (see metrics_text.h).
#include "server/metrics_text.h"

#include <cmath>
#include <cstdlib>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shardcast {
namespace {

bool IsNameChar(char c, bool first, bool colon_ok) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon_ok && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

bool IsValidName(absl::string_view name, bool colon_ok) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!IsNameChar(name[i], i == 0, colon_ok)) return false;
  }
  return true;
}

absl::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

absl::Status CheckLabels(const MetricFamily& f, const MetricLabels& labels) {
  std::set<std::string> seen;
  for (const auto& [name, value] : labels) {
    if (!IsValidName(name, /*colon_ok=*/false) || absl::StartsWith(name, "__")) {
      return absl::InvalidArgumentError(absl::StrCat("metric ", f.name, ": bad label name '", name, "'"));
    }
    if (f.type == MetricType::kHistogram && name == "le") {
      return absl::InvalidArgumentError(absl::StrCat("histogram ", f.name, ": label 'le' is reserved"));
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("metric ", f.name, ": label '", name, "' given twice"));
    }
  }
  return absl::OkStatus();
}

// `{a="x",b="y"}` (with `extra` appended), or "" without labels.
std::string LabelText(const MetricLabels& labels, const MetricLabels& extra = {}) {
  std::string out;
  for (const MetricLabels* set : {&labels, &extra}) {
    for (const auto& [name, value] : *set) {
      absl::StrAppend(&out, out.empty() ? "{" : ",", name, "=\"", EscapeLabelValue(value), "\"");
    }
  }
  return out.empty() ? out : out + "}";
}

absl::Status AppendHistogram(const MetricFamily& f, const MetricSample& s, std::string* out) {
  const HistogramValue& h = s.histogram;
  if (h.counts.size() != h.bounds.size() + 1) {
    return absl::InvalidArgumentError(absl::StrCat("histogram ", f.name, ": ", h.counts.size(), " counts for ",
                                                   h.bounds.size(), " bounds (want bounds + 1)"));
  }
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    if (!std::isfinite(h.bounds[i]) || (i > 0 && !(h.bounds[i] > h.bounds[i - 1]))) {
      return absl::InvalidArgumentError(absl::StrCat("histogram ", f.name, ": bounds must be finite and ascending"));
    }
  }
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= h.bounds.size(); ++i) {
    cumulative += h.counts[i];
    const std::string le = i < h.bounds.size() ? FormatMetricValue(h.bounds[i]) : "+Inf";
    absl::StrAppend(out, f.name, "_bucket", LabelText(s.labels, {{"le", le}}), " ",
                    FormatMetricValue(static_cast<double>(cumulative)), "\n");
  }
  absl::StrAppend(out, f.name, "_sum", LabelText(s.labels), " ", FormatMetricValue(h.sum), "\n");
  absl::StrAppend(out, f.name, "_count", LabelText(s.labels), " ", FormatMetricValue(static_cast<double>(cumulative)),
                  "\n");
  return absl::OkStatus();
}

absl::Status AppendFamily(const MetricFamily& f, std::string* out) {
  if (!IsValidName(f.name, /*colon_ok=*/true)) {
    return absl::InvalidArgumentError(absl::StrCat("bad metric name '", f.name, "'"));
  }
  absl::StrAppend(out, "# HELP ", f.name, " ", EscapeHelp(f.help), "\n");
  absl::StrAppend(out, "# TYPE ", f.name, " ", TypeName(f.type), "\n");
  for (const MetricSample& s : f.samples) {
    if (absl::Status st = CheckLabels(f, s.labels); !st.ok()) return st;
    if (f.type == MetricType::kHistogram) {
      if (absl::Status st = AppendHistogram(f, s, out); !st.ok()) return st;
    } else {
      absl::StrAppend(out, f.name, LabelText(s.labels), " ", FormatMetricValue(s.value), "\n");
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) return absl::StrFormat("%.0f", value);
  // The shortest text that reads back as the same double.
  for (int precision = 1; precision <= 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

absl::StatusOr<std::string> RenderMetrics(const std::vector<MetricFamily>& families) {
  std::string out;
  std::set<std::string> names;
  for (const MetricFamily& f : families) {
    if (!names.insert(f.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("metric family ", f.name, " given twice"));
    }
    if (absl::Status s = AppendFamily(f, &out); !s.ok()) return s;
  }
  return out;
}

}  // namespace shardcast
