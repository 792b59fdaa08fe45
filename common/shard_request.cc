// ValidateShardRequest: the request limits of shard_request.h, checked in one place.
#include "common/shard_request.h"

#include <string_view>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace shardcast {
namespace {

absl::Status TooLong(absl::string_view field, size_t size, size_t limit) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": ", size, " bytes, more than the limit of ", limit, " (README: Request limits)"));
}

absl::Status CheckList(absl::string_view field, const std::vector<std::string>& items, size_t max_items,
                       size_t max_bytes) {
  if (items.size() > max_items) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", items.size(), " entries, more than the limit of ",
                                                   max_items, " (README: Request limits)"));
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].size() > max_bytes) return TooLong(absl::StrCat(field, "[", i, "]"), items[i].size(), max_bytes);
  }
  return absl::OkStatus();
}

// A box request carries boxes instead of a layout: the layout's fields must keep their defaults.
absl::Status CheckNoLayoutFields(const ShardRequestSpec& s) {
  std::string set;
  if (s.tp_size != 1 || s.tp_rank != 0) set += " tp_size/tp_rank";
  if (!s.layout.empty()) set += " layout";
  if (!s.layout_text.empty()) set += " layout_text";
  if (!s.rules.empty()) set += " rules";
  if (!s.prefix.empty()) set += " prefix";
  if (!s.renames.empty()) set += " renames";
  if (s.unstack) set += " unstack";
  if (set.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("a box request names its boxes' keys and offsets; these layout fields "
                                                 "must stay unset:", set));
}

absl::Status CheckBox(const BoxSpec& b, size_t i) {
  const std::string field = absl::StrCat("boxes[", i, "]");
  if (b.name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty name"));
  if (b.name.size() > kMaxBoxStringBytes) return TooLong(field + ".name", b.name.size(), kMaxBoxStringBytes);
  if (b.key.size() > kMaxBoxStringBytes) return TooLong(field + ".key", b.key.size(), kMaxBoxStringBytes);
  if (b.dtype.size() > kMaxDTypeBytes) return TooLong(field + ".dtype", b.dtype.size(), kMaxDTypeBytes);
  if (b.offsets.size() != b.sizes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " (", b.name.substr(0, 200), "): ", b.offsets.size(),
                                                   " offsets but ", b.sizes.size(), " sizes"));
  }
  if (b.sizes.size() > kMaxBoxRank) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", b.sizes.size(), " dims, more than the limit of ",
                                                   kMaxBoxRank, " (README: Request limits)"));
  }
  for (size_t d = 0; d < b.sizes.size(); ++d) {
    int64_t end = 0;
    if (b.offsets[d] < 0 || b.sizes[d] < 0 || __builtin_add_overflow(b.offsets[d], b.sizes[d], &end)) {
      return absl::InvalidArgumentError(absl::StrCat(field, " (", b.name.substr(0, 200), "): dim ", d, " offset ",
                                                     b.offsets[d], " size ", b.sizes[d],
                                                     ": offsets and sizes must be >= 0 (and their sum fit 64 bits)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateBoxes(const ShardRequestSpec& s) {
  if (absl::Status st = CheckNoLayoutFields(s); !st.ok()) return st;
  if (s.boxes.size() > kMaxBoxes) {
    return absl::InvalidArgumentError(absl::StrCat("boxes: ", s.boxes.size(), " entries, more than the limit of ",
                                                   kMaxBoxes, " (README: Request limits); split the request"));
  }
  size_t total = s.dtype.size();
  std::unordered_set<std::string_view> names;
  for (size_t i = 0; i < s.boxes.size(); ++i) {
    const BoxSpec& b = s.boxes[i];
    if (absl::Status st = CheckBox(b, i); !st.ok()) return st;
    // Each dim's offset and size take at most 10 bytes each on the wire, and a box a few more:
    // counted, so that a request within the limit also fits the messages rank 0 forwards.
    total += b.name.size() + b.key.size() + b.dtype.size() + kBoxWireBytesPerDim * b.sizes.size() + kBoxWireBytes;
    if (!names.insert(b.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("boxes[", i, "]: the name '", b.name.substr(0, 200),
                                                     "' is given to two boxes; names must be unique"));
    }
  }
  if (total > kMaxBoxRequestBytes) {
    return TooLong("box request (names, keys, dtypes and 20 bytes a dim)", total, kMaxBoxRequestBytes);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateShardRequest(const ShardRequestSpec& s) {
  if (s.dtype.size() > kMaxDTypeBytes) return TooLong("dtype", s.dtype.size(), kMaxDTypeBytes);
  if (s.is_box_request()) return ValidateBoxes(s);
  if (s.tp_size < 1 || s.tp_size > kMaxTpSize) {
    return absl::InvalidArgumentError(absl::StrCat("tp_size: ", s.tp_size, " is not in 1..", kMaxTpSize));
  }
  if (s.tp_rank < 0 || s.tp_rank >= s.tp_size) {
    return absl::InvalidArgumentError(absl::StrCat("tp_rank ", s.tp_rank, " is not in 0..", s.tp_size - 1));
  }
  // Sizes are each bounded before they are added, so the sum cannot overflow.
  if (s.layout.size() > kMaxLayoutNameBytes) return TooLong("layout", s.layout.size(), kMaxLayoutNameBytes);
  if (s.layout_text.size() > kMaxLayoutTextBytes) return TooLong("layout_text", s.layout_text.size(), kMaxLayoutTextBytes);
  if (!s.layout.empty() && !s.layout_text.empty()) {
    return absl::InvalidArgumentError("layout and layout_text: give a preset name or a layout's text, not both");
  }
  if (absl::Status st = CheckList("rules", s.rules, kMaxRules, kMaxRuleBytes); !st.ok()) return st;
  if (absl::Status st = CheckList("renames", s.renames, kMaxRenames, kMaxRenameBytes); !st.ok()) return st;
  if (s.prefix.size() > kMaxPrefixBytes) return TooLong("prefix", s.prefix.size(), kMaxPrefixBytes);
  if (s.dtype.size() > kMaxDTypeBytes) return TooLong("dtype", s.dtype.size(), kMaxDTypeBytes);
  size_t total = s.layout.size() + s.layout_text.size() + s.prefix.size() + s.dtype.size();
  for (const std::string& r : s.rules) total += r.size();
  for (const std::string& r : s.renames) total += r.size();
  if (total > kMaxRequestBytes) return TooLong("request (all fields)", total, kMaxRequestBytes);
  return absl::OkStatus();
}

}  // namespace shardcast
