// A small JSON value with a parser and a writer: enough for `--json` output, expected.json
// ground truth in tests, the C API's requests and small config files. Objects keep insertion
// order.
//
// Parsing (nlohmann-json's SAX parser underneath; no exception leaves Parse) is strict RFC 8259:
// UTF-8 text only (no byte order mark), no raw control characters in strings, exact number
// grammar, \u escapes of exactly four hex digits with surrogate pairs combined (a lone surrogate
// becomes U+FFFD), integers kept exactly when they fit int64 or uint64 (larger ones are refused,
// not rounded), duplicate keys: the last wins, arrays and objects nested at most 200 deep (the
// builder keeps its own stack: a hostile `[[[[...` is refused, never recursed into). Errors are
// INVALID_ARGUMENT naming a byte offset. Writing always yields valid UTF-8 JSON whatever bytes a
// string holds (see common/text_escape.h for the policy); doubles as %.17g (round trip exact).
#ifndef SHARDCAST_COMMON_JSON_H_
#define SHARDCAST_COMMON_JSON_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shardcast {

class Json {
 public:
  // kUint holds only integers above INT64_MAX; every other integer is a kInt.
  enum class Type { kNull, kBool, kInt, kUint, kDouble, kString, kArray, kObject };

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::kBool), bool_(b) {}
  Json(int v) : type_(Type::kInt), int_(v) {}
  Json(int64_t v) : type_(Type::kInt), int_(v) {}
  Json(uint64_t v)
      : type_(v > static_cast<uint64_t>(INT64_MAX) ? Type::kUint : Type::kInt), int_(static_cast<int64_t>(v)) {}
  Json(double v) : type_(Type::kDouble), double_(v) {}
  Json(const char* s) : type_(Type::kString), string_(s) {}
  Json(std::string s) : type_(Type::kString), string_(std::move(s)) {}
  Json(absl::string_view s) : type_(Type::kString), string_(s) {}

  static Json Array() { Json j; j.type_ = Type::kArray; return j; }
  static Json Object() { Json j; j.type_ = Type::kObject; return j; }
  template <typename T>
  static Json ArrayOf(const std::vector<T>& v) {
    Json j = Array();
    for (const T& x : v) j.Append(Json(x));
    return j;
  }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_object() const { return type_ == Type::kObject; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kUint || type_ == Type::kDouble; }
  bool is_integer() const { return type_ == Type::kInt || type_ == Type::kUint; }

  bool as_bool() const { return bool_; }
  // Numbers converted with saturation (a kUint gives INT64_MAX; NaN gives 0), never UB.
  int64_t as_int() const;
  // Negative numbers give 0.
  uint64_t as_uint() const;
  double as_double() const;
  const std::string& as_string() const { return string_; }
  const std::vector<Json>& items() const { return items_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return members_; }

  // Arrays.
  Json& Append(Json v) { items_.push_back(std::move(v)); return items_.back(); }
  size_t size() const { return type_ == Type::kObject ? members_.size() : items_.size(); }
  const Json& operator[](size_t i) const { return items_[i]; }

  // Objects: Set replaces an existing key; Find returns nullptr when absent.
  Json& Set(absl::string_view key, Json v);
  const Json* Find(absl::string_view key) const;
  // Appends a member without looking for an existing key (the caller knows it is new).
  void AppendMember(std::string key, Json v) {
    type_ = Type::kObject;
    members_.emplace_back(std::move(key), std::move(v));
  }

  // Compact output when indent < 0, else pretty-printed with that many spaces.
  std::string Dump(int indent = -1) const;

  static absl::StatusOr<Json> Parse(absl::string_view text);

 private:
  void DumpTo(std::string* out, int indent, int depth) const;

  Type type_ = Type::kNull;
  bool bool_ = false;
  int64_t int_ = 0;  // kUint: the uint64 value's bits
  double double_ = 0;
  std::string string_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

// Appends `s` as a quoted JSON string.
void AppendJsonString(std::string* out, absl::string_view s);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_JSON_H_
