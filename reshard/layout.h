// Layouts: which tensor-parallel rule cuts each checkpoint key.
//
// A layout is an ordered list of (RE2 pattern, rule); the first pattern that fully matches a key
// wins; unmatched tensors are replicated. Rules:
//   replicate               every rank gets the whole tensor
//   split:D                 TP equal contiguous parts along dim D
//   sections:D:N            dim D holds N equal sections; rank r takes part r of each, in order
//   sections:D:a,b,c        the same with explicit section sizes (fused Mamba in_proj/conv1d)
//   qkv[:HEADS:GROUPS]      Megatron's grouped-interleaved fused QKV: a dim-0 split, validated
//   vocab:D:M               pad with zeros / truncate dim D to ceil(V/(M*TP))*M*TP, then split
//   opaque                  non-tensor entries, passed through whole
// A suffix `@stacked` says the tensor carries a leading layer axis (Megatron torch_dist stacks
// homogeneous layers as `...layers.<param>` of shape [L, ...]): D then names the per-layer dim,
// so the stored split dim is D+1.
//
// Text form (layout files, `shardcast layouts show`): one `PATTERN  RULE` per line, `#` comments.
#ifndef SHARDCAST_RESHARD_LAYOUT_H_
#define SHARDCAST_RESHARD_LAYOUT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace re2 {
class RE2;
}

namespace shardcast {

struct Rule {
  enum class Kind { kReplicate, kSplit, kSections, kQkv, kVocab, kOpaque };
  Kind kind = Kind::kReplicate;
  int dim = 0;                          // split / sections / vocab: per-layer dim
  int num_sections = 0;                 // sections:D:N
  std::vector<int64_t> section_sizes;   // sections:D:a,b,c
  int heads = 0, groups = 0;            // qkv:H:G (0: not validated)
  int64_t multiple = 1;                 // vocab:D:M
  bool stacked = false;                 // @stacked

  // The dim of the stored tensor that this rule cuts (dim + 1 when stacked).
  int stored_dim() const { return dim + (stacked ? 1 : 0); }
  std::string ToString() const;
};

// Parses "split:1", "sections:0:2@stacked", ... InvalidArgument with the reason.
absl::StatusOr<Rule> ParseRule(absl::string_view text);

class Layout {
 public:
  Layout();
  ~Layout();
  Layout(Layout&&) noexcept;
  Layout& operator=(Layout&&) noexcept;

  // Parses layout text; errors name `source` and the line.
  static absl::StatusOr<Layout> Parse(absl::string_view text, absl::string_view source = "layout");
  // Built-in presets: "megatron" (../docs/megatron-layouts.md §6, RADIO included), "replicate".
  static absl::StatusOr<Layout> Preset(absl::string_view name);
  static std::vector<std::string> PresetNames();
  // `name_or_file`: a preset name or a layout file path; `rules` ("PATTERN=RULE") are put in
  // front, so they take precedence.
  static absl::StatusOr<Layout> Load(const std::string& name_or_file, const std::vector<std::string>& rules);

  // Adds a rule in front of all others.
  absl::Status Prepend(const std::string& pattern, const Rule& rule);

  // The first rule whose pattern fully matches `key`, or nullptr (then: replicate).
  const Rule* Match(absl::string_view key) const;
  // The text of the rule that matched (for reports), "replicate (default)" when none did.
  std::string Describe(absl::string_view key) const;

  std::string ToText() const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string pattern;
    std::unique_ptr<re2::RE2> re;
    Rule rule;
  };
  absl::Status Add(const std::string& pattern, const Rule& rule, bool front);
  std::vector<Entry> entries_;
};

}  // namespace shardcast

#endif  // SHARDCAST_RESHARD_LAYOUT_H_
