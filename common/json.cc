#include "common/json.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/text_escape.h"

namespace shardcast {

Json& Json::Set(absl::string_view key, Json v) {
  type_ = Type::kObject;
  for (auto& [k, val] : members_) {
    if (k == key) {
      val = std::move(v);
      return val;
    }
  }
  members_.emplace_back(std::string(key), std::move(v));
  return members_.back().second;
}

const Json* Json::Find(absl::string_view key) const {
  for (const auto& [k, v] : members_) {
    if (k == key) return &v;
  }
  return nullptr;
}

int64_t Json::as_int() const {
  switch (type_) {
    case Type::kInt: return int_;
    case Type::kUint: return std::numeric_limits<int64_t>::max();
    case Type::kDouble:
      if (std::isnan(double_)) return 0;
      if (double_ >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
      if (double_ <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
      return static_cast<int64_t>(double_);
    default: return 0;
  }
}

uint64_t Json::as_uint() const {
  switch (type_) {
    case Type::kInt: return int_ < 0 ? 0 : static_cast<uint64_t>(int_);
    case Type::kUint: return static_cast<uint64_t>(int_);
    case Type::kDouble:
      if (!(double_ > 0)) return 0;
      if (double_ >= 1.8446744073709552e19) return std::numeric_limits<uint64_t>::max();
      return static_cast<uint64_t>(double_);
    default: return 0;
  }
}

double Json::as_double() const {
  switch (type_) {
    case Type::kInt: return static_cast<double>(int_);
    case Type::kUint: return static_cast<double>(static_cast<uint64_t>(int_));
    case Type::kDouble: return double_;
    default: return 0;
  }
}

void AppendJsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (size_t pos = 0; pos < s.size();) {
    // A run of printable ASCII that needs no escape goes in one append.
    size_t run = pos;
    while (run < s.size() && s[run] >= 0x20 && s[run] < 0x7F && s[run] != '"' && s[run] != '\\') ++run;
    if (run > pos) {
      out->append(s.data() + pos, run - pos);
      pos = run;
      continue;
    }
    const Utf8Step step = DecodeUtf8(s, pos);
    const uint32_t c = step.code_point;
    if (step.kind == Utf8Step::Kind::kSurrogate) {
      // A lone surrogate as Python's pickle stores it ("surrogatepass"): the escape json.dumps writes.
      absl::StrAppendFormat(out, "\\u%04x", c);
    } else if (step.kind == Utf8Step::Kind::kInvalid) {
      out->append("\\ufffd");
    } else if (c == '"') {
      out->append("\\\"");
    } else if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (c < 0x20 || c == 0x7F || c == 0x2028 || c == 0x2029) {
      absl::StrAppendFormat(out, "\\u%04x", c);
    } else {
      out->append(s.data() + pos, step.length);
    }
    pos += step.length;
  }
  out->push_back('"');
}

void Json::DumpTo(std::string* out, int indent, int depth) const {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out->push_back('\n');
    out->append(static_cast<size_t>(indent * d), ' ');
  };
  switch (type_) {
    case Type::kNull: out->append("null"); break;
    case Type::kBool: out->append(bool_ ? "true" : "false"); break;
    case Type::kInt: absl::StrAppend(out, int_); break;
    case Type::kUint: absl::StrAppend(out, static_cast<uint64_t>(int_)); break;
    case Type::kDouble:
      if (std::isfinite(double_)) {
        // %.17g round-trips every double; ".0" keeps an integral value a double when parsed back.
        const std::string d = absl::StrFormat("%.17g", double_);
        out->append(d);
        if (d.find_first_of(".e") == std::string::npos) out->append(".0");
      } else {
        out->append("null");
      }
      break;
    case Type::kString: AppendJsonString(out, string_); break;
    case Type::kArray: {
      out->push_back('[');
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i) out->push_back(',');
        newline(depth + 1);
        items_[i].DumpTo(out, indent, depth + 1);
      }
      if (!items_.empty()) newline(depth);
      out->push_back(']');
      break;
    }
    case Type::kObject: {
      out->push_back('{');
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i) out->push_back(',');
        newline(depth + 1);
        AppendJsonString(out, members_[i].first);
        out->append(indent < 0 ? ":" : ": ");
        members_[i].second.DumpTo(out, indent, depth + 1);
      }
      if (!members_.empty()) newline(depth);
      out->push_back('}');
      break;
    }
  }
}

std::string Json::Dump(int indent) const {
  std::string out;
  DumpTo(&out, indent, 0);
  return out;
}

namespace {

class Parser {
 public:
  explicit Parser(absl::string_view text) : s_(text) {}

  absl::StatusOr<Json> ParseDocument() {
    absl::StatusOr<Json> v = ParseValue(0);
    if (!v.ok()) return v;
    SkipSpace();
    if (pos_ != s_.size()) return Error("trailing characters");
    return v;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("JSON: ", what, " at offset ", pos_));
  }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) ++pos_;
  }
  bool Consume(absl::string_view lit) {
    if (s_.substr(pos_, lit.size()) == lit) {
      pos_ += lit.size();
      return true;
    }
    return false;
  }

  // Four hex digits at pos_; -1 if they are not.
  int64_t Hex4() {
    if (s_.size() - pos_ < 4) return -1;
    int64_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[pos_ + k];
      int d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        return -1;
      }
      v = v * 16 + d;
    }
    pos_ += 4;
    return v;
  }

  absl::StatusOr<std::string> ParseString() {
    ++pos_;  // opening quote
    std::string out;
    while (pos_ < s_.size()) {
      // A run of plain ASCII goes in one append.
      size_t run = pos_;
      while (run < s_.size() && s_[run] >= 0x20 && s_[run] < 0x7F && s_[run] != '"' && s_[run] != '\\') ++run;
      if (run > pos_) {
        out.append(s_.data() + pos_, run - pos_);
        pos_ = run;
        continue;
      }
      const unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) return Error("raw control character in a string (must be escaped)");
      if (c != '\\') {
        const Utf8Step step = DecodeUtf8(s_, pos_);
        if (step.kind != Utf8Step::Kind::kCodePoint) return Error("invalid UTF-8 in a string");
        out.append(s_.data() + pos_, step.length);
        pos_ += step.length;
        continue;
      }
      if (++pos_ >= s_.size()) break;
      const char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          int64_t cp = Hex4();
          if (cp < 0) return Error("\\u must be followed by four hex digits");
          if (cp >= 0xD800 && cp <= 0xDBFF && s_.substr(pos_, 2) == "\\u") {
            // A high surrogate followed by a low one: one code point.
            const size_t save = pos_;
            pos_ += 2;
            const int64_t lo = Hex4();
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              pos_ = save;  // not a pair: the high surrogate stands alone
            }
          }
          AppendUtf8(&out, static_cast<uint32_t>(cp));  // a lone surrogate becomes U+FFFD
          break;
        }
        default: return Error("bad escape");
      }
    }
    return Error("unterminated string");
  }

  // RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  absl::StatusOr<Json> ParseNumber() {
    const size_t start = pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      return Error("unexpected character");
    }
    bool is_double = false;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) return Error("digits expected after '.'");
      is_double = true;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) return Error("digits expected in the exponent");
      is_double = true;
    }
    const std::string num(s_.substr(start, pos_ - start));
    if (is_double) {
      const double d = std::strtod(num.c_str(), nullptr);
      if (!std::isfinite(d)) return Error(absl::StrCat("number ", num.substr(0, 40), " is out of range"));
      return Json(d);
    }
    int64_t i;
    if (absl::SimpleAtoi(num, &i)) return Json(i);
    uint64_t u;
    if (num[0] != '-' && absl::SimpleAtoi(num, &u)) return Json(u);
    return Error(absl::StrCat("integer ", num.substr(0, 40), " does not fit 64 bits"));
  }

  absl::StatusOr<Json> ParseValue(int depth) {
    if (depth > 200) return Error("nesting too deep");
    SkipSpace();
    if (pos_ >= s_.size()) return Error("unexpected end");
    char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      Json obj = Json::Object();
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == '}') { ++pos_; return obj; }
      // Key -> position, so that duplicate keys (the last wins) cost O(1) each, not a scan.
      absl::flat_hash_map<std::string, size_t> index;
      std::vector<std::pair<std::string, Json>> members;
      while (true) {
        SkipSpace();
        if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected key");
        absl::StatusOr<std::string> key = ParseString();
        if (!key.ok()) return key.status();
        SkipSpace();
        if (!Consume(":")) return Error("expected ':'");
        absl::StatusOr<Json> v = ParseValue(depth + 1);
        if (!v.ok()) return v;
        auto [it, inserted] = index.emplace(*key, members.size());
        if (inserted) {
          members.emplace_back(*std::move(key), *std::move(v));
        } else {
          members[it->second].second = *std::move(v);
        }
        SkipSpace();
        if (Consume(",")) continue;
        if (Consume("}")) {
          for (auto& [k, val] : members) obj.AppendMember(std::move(k), std::move(val));
          return obj;
        }
        return Error("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++pos_;
      Json arr = Json::Array();
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ']') { ++pos_; return arr; }
      while (true) {
        absl::StatusOr<Json> v = ParseValue(depth + 1);
        if (!v.ok()) return v;
        arr.Append(*std::move(v));
        SkipSpace();
        if (Consume(",")) continue;
        if (Consume("]")) return arr;
        return Error("expected ',' or ']'");
      }
    }
    if (c == '"') {
      absl::StatusOr<std::string> s = ParseString();
      if (!s.ok()) return s.status();
      return Json(*std::move(s));
    }
    if (Consume("true")) return Json(true);
    if (Consume("false")) return Json(false);
    if (Consume("null")) return Json();
    return ParseNumber();
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<Json> Json::Parse(absl::string_view text) { return Parser(text).ParseDocument(); }

}  // namespace shardcast
