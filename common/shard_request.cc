// ValidateShardRequest: the request limits of shard_request.h, checked in one place.
#include "common/shard_request.h"

#include "absl/strings/str_cat.h"

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

}  // namespace

absl::Status ValidateShardRequest(const ShardRequestSpec& s) {
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
