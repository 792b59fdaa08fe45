#include "common/args.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shardcast {

void ArgParser::AddFlag(const std::string& name, const std::string& value_name, const std::string& help,
                        const std::string& default_value, bool repeated) {
  flags_.push_back(Flag{name, value_name, help, default_value, false, repeated});
}

void ArgParser::AddSwitch(const std::string& name, const std::string& help) {
  flags_.push_back(Flag{name, "", help, "", true, false});
}

void ArgParser::AddPositional(const std::string& name, const std::string& help, bool optional) {
  positionals_.emplace_back(name, help);
  if (!optional) required_positionals_ = positionals_.size();
}

const ArgParser::Flag* ArgParser::Find(const std::string& name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

absl::Status ArgParser::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      help_requested_ = true;
      return absl::OkStatus();
    }
    if (!absl::StartsWith(a, "--") || a == "--") {
      if (positional_values_.size() >= positionals_.size()) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", a, "'"));
      }
      positional_values_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const Flag* f = Find(name);
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see '", command_, " --help')"));
    }
    if (f->is_switch) {
      if (has_value) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      values_[name].push_back("1");
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value (", f->value_name, ")"));
      value = args[++i];
    }
    if (!f->repeated && values_.count(name)) return absl::InvalidArgumentError(absl::StrCat("--", name, " given twice"));
    values_[name].push_back(value);
  }
  if (positional_values_.size() < required_positionals_) {
    return absl::InvalidArgumentError(
        absl::StrCat("missing ", positionals_[positional_values_.size()].first, " (see '", command_, " --help')"));
  }
  return absl::OkStatus();
}

std::string ArgParser::Help() const {
  std::string out = absl::StrCat("usage: ", usage_, "\n\n", description_, "\n");
  if (!positionals_.empty()) {
    out += "\narguments:\n";
    for (const auto& [n, h] : positionals_) absl::StrAppendFormat(&out, "  %-24s %s\n", n, h);
  }
  out += "\nflags:\n";
  for (const Flag& f : flags_) {
    std::string lhs = absl::StrCat("--", f.name, f.is_switch ? "" : absl::StrCat(" ", f.value_name));
    std::string rhs = f.help;
    if (!f.default_value.empty()) absl::StrAppend(&rhs, " (default: ", f.default_value, ")");
    if (f.repeated) absl::StrAppend(&rhs, " [repeatable]");
    absl::StrAppendFormat(&out, "  %-24s %s\n", lhs, rhs);
  }
  absl::StrAppendFormat(&out, "  %-24s %s\n", "--help", "show this help");
  return out;
}

bool ArgParser::Has(const std::string& name) const { return values_.count(name) > 0; }

std::string ArgParser::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end()) return it->second.back();
  const Flag* f = Find(name);
  return f ? f->default_value : "";
}

std::vector<std::string> ArgParser::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<int64_t> ArgParser::GetInt(const std::string& name) const {
  int64_t v;
  std::string s = Get(name);
  if (!absl::SimpleAtoi(s, &v)) return absl::InvalidArgumentError(absl::StrCat("--", name, " expects an integer, got '", s, "'"));
  return v;
}

absl::StatusOr<std::optional<int64_t>> ArgParser::GetOptionalInt(const std::string& name) const {
  if (!Has(name)) return std::optional<int64_t>();
  absl::StatusOr<int64_t> v = GetInt(name);
  if (!v.ok()) return v.status();
  return std::optional<int64_t>(*v);
}

absl::StatusOr<uint64_t> ArgParser::GetBytes(const std::string& name) const {
  std::string s = absl::AsciiStrToLower(Get(name));
  uint64_t mult = 1;
  for (const auto& [suffix, m] : std::vector<std::pair<std::string, uint64_t>>{
           {"kib", 1ull << 10}, {"mib", 1ull << 20}, {"gib", 1ull << 30}, {"k", 1ull << 10},
           {"m", 1ull << 20}, {"g", 1ull << 30}, {"b", 1}}) {
    if (absl::EndsWith(s, suffix)) {
      s = s.substr(0, s.size() - suffix.size());
      mult = m;
      break;
    }
  }
  uint64_t v;
  if (!absl::SimpleAtoi(s, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " expects a byte count like 16MiB, got '", Get(name), "'"));
  }
  return v * mult;
}

}  // namespace shardcast
