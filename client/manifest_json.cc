// ManifestFromJson / ShardRequestFromJson: JSON documents from a caller, every lookup checked.
#include "client/manifest_json.h"

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "reshard/layout.h"

namespace shardcast {
namespace {

absl::Status Missing(absl::string_view what, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("not a manifest: ", what, ": expected ", expected));
}

absl::StatusOr<std::string> StringMember(const Json& object, absl::string_view key, absl::string_view what) {
  const Json* v = object.Find(key);
  if (v == nullptr || !v->is_string()) return Missing(absl::StrCat(what, key), "a string");
  return v->as_string();
}

// A non-negative integer no larger than `max`.
absl::StatusOr<uint64_t> CountMember(const Json& object, absl::string_view key, absl::string_view what, uint64_t max) {
  const Json* v = object.Find(key);
  if (v == nullptr || !v->is_integer() || (v->type() == Json::Type::kInt && v->as_int() < 0) || v->as_uint() > max) {
    return Missing(absl::StrCat(what, key), absl::StrCat("an integer in 0..", max));
  }
  return v->as_uint();
}

absl::StatusOr<ShardEntry> ShardFromJson(const Json& s, size_t index) {
  if (!s.is_object()) return Missing(absl::StrCat("shards[", index, "]"), "an object");
  const std::string what = absl::StrCat("shards[", index, "].");
  ShardEntry e;
  SC_ASSIGN_OR_RETURN(e.name, StringMember(s, "name", what));
  SC_ASSIGN_OR_RETURN(e.key, StringMember(s, "key", what));
  SC_ASSIGN_OR_RETURN(e.dtype, StringMember(s, "dtype", what));
  SC_ASSIGN_OR_RETURN(e.rule, StringMember(s, "rule", what));
  SC_ASSIGN_OR_RETURN(e.nbytes, CountMember(s, "nbytes", what, std::numeric_limits<uint64_t>::max()));
  SC_ASSIGN_OR_RETURN(const uint64_t crc, CountMember(s, "crc32c", what, std::numeric_limits<uint32_t>::max()));
  e.crc32c = static_cast<uint32_t>(crc);
  SC_ASSIGN_OR_RETURN(const uint64_t owner, CountMember(s, "owner_rank", what, std::numeric_limits<int>::max()));
  e.owner_rank = static_cast<int>(owner);
  const Json* shape = s.Find("shape");
  if (shape == nullptr || !shape->is_array()) return Missing(absl::StrCat(what, "shape"), "an array of integers");
  for (const Json& d : shape->items()) {
    if (d.type() != Json::Type::kInt) return Missing(absl::StrCat(what, "shape"), "an array of integers");
    e.shape.push_back(d.as_int());  // negative dims are ValidateManifest's to refuse
  }
  return e;
}

// A list of strings, or absent (empty).
absl::StatusOr<std::vector<std::string>> StringList(const Json& object, absl::string_view key) {
  std::vector<std::string> out;
  const Json* v = object.Find(key);
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_array()) return absl::InvalidArgumentError(absl::StrCat(key, ": expected an array of strings"));
  for (const Json& item : v->items()) {
    if (!item.is_string()) return absl::InvalidArgumentError(absl::StrCat(key, ": expected an array of strings"));
    out.push_back(item.as_string());
  }
  return out;
}

// A string, or absent / null ("").
absl::StatusOr<std::string> OptionalString(const Json& object, absl::string_view key) {
  const Json* v = object.Find(key);
  if (v == nullptr || v->is_null()) return std::string();
  if (!v->is_string()) return absl::InvalidArgumentError(absl::StrCat(key, ": expected a string"));
  return v->as_string();
}

absl::Status OptionalInt(const Json& object, absl::string_view key, int64_t* out) {
  const Json* v = object.Find(key);
  if (v == nullptr) return absl::OkStatus();
  if (v->type() != Json::Type::kInt) return absl::InvalidArgumentError(absl::StrCat(key, ": expected an integer"));
  *out = v->as_int();
  return absl::OkStatus();
}

// An array of integers (offsets or sizes of a box), or absent (empty: a scalar).
absl::StatusOr<std::vector<int64_t>> IntList(const Json& object, absl::string_view key, absl::string_view what) {
  std::vector<int64_t> out;
  const Json* v = object.Find(key);
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_array()) return absl::InvalidArgumentError(absl::StrCat(what, key, ": expected an array of integers"));
  for (const Json& item : v->items()) {
    if (item.type() != Json::Type::kInt) {
      return absl::InvalidArgumentError(absl::StrCat(what, key, ": expected an array of integers"));
    }
    out.push_back(item.as_int());  // negative values are ValidateShardRequest's to refuse
  }
  return out;
}

// "boxes": [{"name", "key", "offsets": [], "sizes": [], "dtype"}], or absent.
absl::StatusOr<std::vector<BoxSpec>> BoxList(const Json& object) {
  std::vector<BoxSpec> out;
  const Json* v = object.Find("boxes");
  if (v == nullptr || v->is_null()) return out;
  if (!v->is_array()) return absl::InvalidArgumentError("boxes: expected an array of objects");
  for (size_t i = 0; i < v->items().size(); ++i) {
    const Json& b = v->items()[i];
    const std::string what = absl::StrCat("boxes[", i, "].");
    if (!b.is_object()) return absl::InvalidArgumentError(absl::StrCat("boxes[", i, "]: expected an object"));
    BoxSpec box;
    SC_ASSIGN_OR_RETURN(box.name, OptionalString(b, "name"));
    SC_ASSIGN_OR_RETURN(box.key, OptionalString(b, "key"));
    SC_ASSIGN_OR_RETURN(box.dtype, OptionalString(b, "dtype"));
    SC_ASSIGN_OR_RETURN(box.offsets, IntList(b, "offsets", what));
    SC_ASSIGN_OR_RETURN(box.sizes, IntList(b, "sizes", what));
    out.push_back(std::move(box));
  }
  return out;
}

}  // namespace

absl::StatusOr<Manifest> ManifestFromJson(absl::string_view text) {
  SC_ASSIGN_OR_RETURN(const Json j, Json::Parse(text));
  if (!j.is_object()) return Missing("the document", "an object");
  Manifest m;
  SC_ASSIGN_OR_RETURN(m.request_id, StringMember(j, "request_id", ""));
  const Json* shards = j.Find("shards");
  if (shards == nullptr || !shards->is_array()) return Missing("shards", "an array");
  for (size_t i = 0; i < shards->items().size(); ++i) {
    SC_ASSIGN_OR_RETURN(ShardEntry e, ShardFromJson(shards->items()[i], i));
    m.shards.push_back(std::move(e));
  }
  const Json* endpoints = j.Find("endpoints");
  if (endpoints == nullptr || !endpoints->is_array()) return Missing("endpoints", "an array");
  for (const Json& e : endpoints->items()) {
    if (!e.is_string()) return Missing("endpoints[]", "strings");
    m.endpoints.push_back(e.as_string());
  }
  if (j.Find("lease_id") != nullptr) {  // optional: absent when the manifest has no lease
    SC_ASSIGN_OR_RETURN(m.lease_id, StringMember(j, "lease_id", ""));
  }
  if (j.Find("digest") != nullptr) {  // optional: absent from an older server's manifest
    SC_ASSIGN_OR_RETURN(m.digest, StringMember(j, "digest", ""));
  }
  if (const Json* total = j.Find("total_bytes"); total != nullptr) {
    if (!total->is_integer()) return Missing("total_bytes", "an integer");
    m.total_bytes = total->as_uint();
  }
  SC_ASSIGN_OR_RETURN(m.opaque, StringList(j, "opaque"));
  SC_ASSIGN_OR_RETURN(m.notes, StringList(j, "notes"));
  // The same checks as on a manifest straight from the server (owners, dtypes, sizes).
  if (absl::Status valid = ValidateManifest(m); !valid.ok()) return absl::InvalidArgumentError(valid.message());
  return m;
}

absl::StatusOr<ShardRequestSpec> ShardRequestFromJson(absl::string_view text) {
  SC_ASSIGN_OR_RETURN(const Json j, Json::Parse(text));
  if (!j.is_object()) return absl::InvalidArgumentError("the request: expected a JSON object");
  ShardRequestSpec spec;
  SC_RETURN_IF_ERROR(OptionalInt(j, "tp_size", &spec.tp_size));
  SC_RETURN_IF_ERROR(OptionalInt(j, "tp_rank", &spec.tp_rank));
  if (const Json* v = j.Find("unstack"); v != nullptr && !v->is_null()) {
    if (v->type() != Json::Type::kBool) return absl::InvalidArgumentError("unstack: expected true or false");
    spec.unstack = v->as_bool();
  }
  SC_ASSIGN_OR_RETURN(spec.layout, OptionalString(j, "layout"));  // a preset, or a local layout file
  SC_ASSIGN_OR_RETURN(spec.layout_text, OptionalString(j, "layout_text"));
  SC_ASSIGN_OR_RETURN(spec.prefix, OptionalString(j, "prefix"));
  SC_ASSIGN_OR_RETURN(spec.dtype, OptionalString(j, "dtype"));
  SC_ASSIGN_OR_RETURN(spec.rules, StringList(j, "rules"));
  SC_ASSIGN_OR_RETURN(spec.renames, StringList(j, "renames"));
  SC_ASSIGN_OR_RETURN(spec.boxes, BoxList(j));
  // "glu": true / false settles the fc1 rule (Layout::GluRules), below the explicit rules.
  if (const Json* v = j.Find("glu"); v != nullptr && !v->is_null()) {
    if (v->type() != Json::Type::kBool) return absl::InvalidArgumentError("glu: expected true, false or null");
    std::vector<std::string> rules = Layout::GluRules(v->as_bool());
    rules.insert(rules.end(), spec.rules.begin(), spec.rules.end());
    spec.rules = std::move(rules);
  }
  return spec;
}

}  // namespace shardcast
