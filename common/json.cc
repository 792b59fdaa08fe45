// Json's accessors and writer (ours: the escaping policy of common/text_escape.h, doubles as %.17g)
// and its parser: nlohmann-json's SAX parser (strict RFC 8259, UTF-8 checked, exact int64/uint64)
// feeding a builder with an explicit stack and a depth limit.
#include "common/json.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <exception>
#include <iterator>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/text_escape.h"
#include "nlohmann/json.hpp"

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

constexpr size_t kMaxDepth = 200;  // arrays and objects; deeper documents are refused

// Walks the text for nlohmann's parser and counts the bytes it has read, so that errors found
// by the handler below (depth, integer range) can name an offset too.
class CountingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  CountingIterator(const char* p, size_t* read) : p_(p), read_(read) {}
  reference operator*() const { return *p_; }
  CountingIterator& operator++() {
    ++p_;
    ++*read_;
    return *this;
  }
  bool operator==(const CountingIterator& o) const { return p_ == o.p_; }
  bool operator!=(const CountingIterator& o) const { return p_ != o.p_; }

 private:
  const char* p_;
  size_t* read_;
};

// A \u escape naming a surrogate that is not part of a high+low pair becomes \ufffd (same
// length, so offsets in errors stay those of the input): nlohmann refuses lone surrogates, we
// promise U+FFFD. Backslashes only occur inside strings (elsewhere the text is invalid anyway).
// Returns the text unchanged (no copy) when there is nothing to replace.
absl::string_view ReplaceLoneSurrogateEscapes(absl::string_view text, std::string* storage) {
  auto escape_at = [&](size_t pos) -> int64_t {  // the \uXXXX value at pos, or -1
    if (text.size() - pos < 6 || text[pos] != '\\' || text[pos + 1] != 'u') return -1;
    uint32_t v = 0;
    for (size_t k = pos + 2; k < pos + 6; ++k) {
      const char c = text[k];
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return -1;
      v = v * 16 + (c <= '9' ? c - '0' : (absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10));
    }
    return v;
  };
  for (size_t pos = text.find('\\'); pos != absl::string_view::npos; pos = text.find('\\', pos)) {
    const int64_t cp = escape_at(pos);
    if (cp < 0xD800 || cp > 0xDFFF) {
      pos += 2;  // any other escape, including "\\"
      continue;
    }
    const int64_t next = cp <= 0xDBFF ? escape_at(pos + 6) : -1;
    if (next >= 0xDC00 && next <= 0xDFFF) {
      pos += 12;  // a pair
      continue;
    }
    if (storage->empty()) storage->assign(text.data(), text.size());
    storage->replace(pos, 6, "\\ufffd");
    text = *storage;
    pos += 6;
  }
  return text;
}

// Builds Json values from nlohmann's SAX events with an explicit stack (no recursion), keeping
// insertion order and letting the last of duplicate keys win.
class JsonBuilder {
 public:
  explicit JsonBuilder(const size_t* read) : read_(read) {}

  bool null() { return Add(Json()); }
  bool boolean(bool b) { return Add(Json(b)); }
  bool number_integer(int64_t v) { return Add(Json(v)); }
  bool number_unsigned(uint64_t v) { return Add(Json(v)); }
  bool number_float(double v, const std::string& text);
  bool string(std::string& s) { return Add(Json(std::move(s))); }
  bool binary(nlohmann::json::binary_t&) { return Fail("binary values are not JSON"); }
  bool key(std::string& k);
  bool start_object(size_t) { return Push(Json::Object()); }
  bool start_array(size_t) { return Push(Json::Array()); }
  bool end_object() { return Pop(); }
  bool end_array() { return Pop(); }
  bool parse_error(size_t position, const std::string&, const nlohmann::detail::exception& e);

  // The document, or the first error.
  absl::StatusOr<Json> Finish(bool parsed) &&;

 private:
  struct Container {
    Json value;
    std::string key;                                  // objects: the key of the next value
    absl::flat_hash_map<std::string, size_t> index;  // objects: key -> position (duplicates O(1))
  };

  bool Push(Json container);
  bool Pop();
  bool Add(Json v);
  bool Fail(absl::string_view what);

  const size_t* read_;  // bytes the parser has read so far
  std::vector<Container> stack_;
  Json root_;
  absl::Status error_;
};

bool JsonBuilder::number_float(double v, const std::string& text) {
  // nlohmann turns an integer that fits no 64-bit type into a double; we refuse it instead.
  if (text.find_first_of(".eE") == std::string::npos) {
    return Fail(absl::StrCat("integer ", text.substr(0, 40), " does not fit 64 bits"));
  }
  if (!std::isfinite(v)) return Fail(absl::StrCat("number ", text.substr(0, 40), " is out of range"));
  return Add(Json(v));
}

bool JsonBuilder::key(std::string& k) {
  stack_.back().key = std::move(k);
  return true;
}

bool JsonBuilder::Push(Json container) {
  if (stack_.size() >= kMaxDepth) return Fail("nesting too deep");
  stack_.push_back({std::move(container), {}, {}});
  return true;
}

bool JsonBuilder::Pop() {
  Json done = std::move(stack_.back().value);
  stack_.pop_back();
  return Add(std::move(done));
}

bool JsonBuilder::Add(Json v) {
  if (stack_.empty()) {
    root_ = std::move(v);
    return true;
  }
  Container& top = stack_.back();
  if (top.value.is_array()) {
    top.value.Append(std::move(v));
    return true;
  }
  auto [it, inserted] = top.index.emplace(top.key, top.value.size());
  if (inserted) {
    top.value.AppendMember(std::move(top.key), std::move(v));
  } else {
    // members() is read-only: Set finds the key and replaces its value (rare: duplicates only).
    top.value.Set(top.key, std::move(v));
  }
  return true;
}

bool JsonBuilder::Fail(absl::string_view what) {
  error_ = absl::InvalidArgumentError(absl::StrCat("JSON: ", what, " at offset ", *read_ > 0 ? *read_ - 1 : 0));
  return false;
}

bool JsonBuilder::parse_error(size_t position, const std::string&, const nlohmann::detail::exception& e) {
  // e.what(): "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error
  // while parsing value - invalid literal; last read: '...'". Keep the part after the column; the
  // last-read text comes from the input, so it is escaped.
  absl::string_view what = e.what();
  if (absl::StartsWith(what, "[json.exception.")) what.remove_prefix(std::min(what.size(), what.find("] ") + 2));
  if (absl::StartsWith(what, "parse error")) what.remove_prefix(std::min(what.size(), what.find(": ") + 2));
  error_ = absl::InvalidArgumentError(
      absl::StrCat("JSON: ", EscapeForTerminal(what.substr(0, 200)), " at offset ", position > 0 ? position - 1 : 0));
  return false;
}

absl::StatusOr<Json> JsonBuilder::Finish(bool parsed) && {
  if (!error_.ok()) return error_;
  if (!parsed || !stack_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("JSON: incomplete document at offset ", *read_));
  }
  return std::move(root_);
}

}  // namespace

absl::StatusOr<Json> Json::Parse(absl::string_view text) {
  // nlohmann skips a UTF-8 byte order mark; RFC 8259 lets a parser refuse it, and we always have.
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) return absl::InvalidArgumentError("JSON: byte order mark at offset 0");
  // nlohmann takes a NUL byte for the end of the input; in JSON it is never valid (raw in a string
  // or outside one).
  if (const size_t nul = text.find('\0'); nul != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("JSON: NUL byte at offset ", nul));
  }
  std::string rewritten;
  text = ReplaceLoneSurrogateEscapes(text, &rewritten);
  size_t read = 0;
  JsonBuilder builder(&read);
  bool parsed = false;
  try {
    parsed = nlohmann::json::sax_parse(CountingIterator(text.data(), &read),
                                       CountingIterator(text.data() + text.size(), &read), &builder,
                                       nlohmann::json::input_format_t::json, /*strict=*/true,
                                       /*ignore_comments=*/false);
  } catch (const std::exception& e) {  // not expected from a SAX parse; never let one escape
    return absl::InternalError(absl::StrCat("JSON: ", EscapeForTerminal(e.what())));
  }
  return std::move(builder).Finish(parsed);
}


}  // namespace shardcast
