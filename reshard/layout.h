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
//
// Where a layout comes from: a preset (Preset), text (Parse, Build), or a local file (ReadFile,
// Load). Only the CLI, the client libraries and shardcastd's own --layout flag read files; the
// service builds a request's layout from a preset name or the text the client sent, so no request
// can make it open a path. Every rule parameter is range-checked (the limits below) and every
// pattern is compiled with RE2's memory limit (kPatternMaxMemBytes, common/shard_request.h).
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

// The ranges ParseRule accepts (README.md, "Request limits").
inline constexpr int64_t kMaxRuleDim = 63;             // D of every rule
inline constexpr int64_t kMaxSections = 4096;          // N, or the count of a,b,c
inline constexpr int64_t kMaxSectionSize = int64_t{1} << 48;
inline constexpr int64_t kMaxQkvHeads = 1 << 20;       // HEADS (GROUPS <= HEADS)
inline constexpr int64_t kMaxVocabMultiple = 1 << 20;  // M

struct Rule {
  enum class Kind { kReplicate, kSplit, kSections, kQkv, kVocab, kOpaque };
  Kind kind = Kind::kReplicate;
  int dim = 0;                          // split / sections / vocab: per-layer dim, 0..kMaxRuleDim
  int num_sections = 0;                 // sections:D:N, 1..kMaxSections
  std::vector<int64_t> section_sizes;   // sections:D:a,b,c, each 1..kMaxSectionSize
  int heads = 0, groups = 0;            // qkv:H:G (0: not validated), 1..kMaxQkvHeads
  int64_t multiple = 1;                 // vocab:D:M, 1..kMaxVocabMultiple
  bool stacked = false;                 // @stacked

  // The dim of the stored tensor that this rule cuts (dim + 1 when stacked).
  int stored_dim() const { return dim + (stacked ? 1 : 0); }
  std::string ToString() const;
};

// Parses "split:1", "sections:0:2@stacked", ... InvalidArgument with the reason. Numbers are
// parsed as int64 and range-checked before they are stored (no silent narrowing).
absl::StatusOr<Rule> ParseRule(absl::string_view text);

struct ShardRequestSpec;

// Where a request's layout comes from, before anything is compiled: the text it carries
// (layout_text), a preset it names (its text), or the server's default (`server_default`: the
// caller supplies its own --layout text and --rule rules). InvalidArgument for a name that is
// not a preset, saying to send the text: nothing here can reach a file.
struct RequestLayoutSource {
  std::string text;
  std::string source;        // for error messages: "layout_text" or the preset's name
  bool server_default = false;
};
absl::StatusOr<RequestLayoutSource> ResolveRequestLayout(const ShardRequestSpec& spec);

// What Layout::Find returns: the rule of the first matching entry (nullptr: none matched), and
// whether that entry is the unmodified `megatron` preset's fc1 rule (`split:0` for
// `(mlp|shared_experts).linear_fc1.(weight|bias)`): the planner may then infer `sections:0:2`
// for a GLU fc1 from the stored chunk grid. An entry from a --rule, a layout file or
// layout_text that differs from the preset is never such a default: an explicit rule wins.
struct LayoutMatch {
  const Rule* rule = nullptr;
  bool glu_fc1_default = false;
};

class Layout {
 public:
  Layout();
  ~Layout();
  Layout(Layout&&) noexcept;
  Layout& operator=(Layout&&) noexcept;

  // Parses layout text; errors name `source` and the line. InvalidArgument beyond
  // kMaxLayoutTextBytes, kMaxLayoutEntries lines or kMaxPatternBytes per pattern.
  static absl::StatusOr<Layout> Parse(absl::string_view text, absl::string_view source = "layout");
  // Parses `text` and puts `rules` ("PATTERN=RULE") in front, the last one first: what a request
  // compiles (its layout's text plus its rules).
  static absl::StatusOr<Layout> Build(absl::string_view text, absl::string_view source,
                                      const std::vector<std::string>& rules);
  // Built-in presets: "megatron" (../docs/megatron-layouts.md §6, RADIO included), "replicate".
  static absl::StatusOr<Layout> Preset(absl::string_view name);
  // The text of a preset; NotFound naming the presets.
  static absl::StatusOr<std::string> PresetText(absl::string_view name);
  static bool IsPreset(absl::string_view name);
  static std::vector<std::string> PresetNames();
  // `--glu yes|no` as --rule strings ("PATTERN=RULE", the precedence order Build expects): the
  // megatron preset's fc1 patterns as sections:0:2 (gated) or split:0, @stacked for stacked keys.
  static std::vector<std::string> GluRules(bool gated);
  // Reads a local layout file (the CLI, the client libraries, shardcastd's --layout flag; never a
  // request). Refuses what is not a regular file (a FIFO, /dev/zero) before opening it, and files
  // over kMaxLayoutTextBytes. NotFound when it cannot be read.
  static absl::StatusOr<std::string> ReadFile(const std::string& path);
  // `name_or_file`: a preset name or a layout file path (ReadFile); `rules` ("PATTERN=RULE") are
  // put in front, so they take precedence. For local callers only (see ReadFile).
  static absl::StatusOr<Layout> Load(const std::string& name_or_file, const std::vector<std::string>& rules);

  // Adds a rule in front of all others.
  absl::Status Prepend(const std::string& pattern, const Rule& rule);

  // The first rule whose pattern fully matches `key`, or nullptr (then: replicate).
  const Rule* Match(absl::string_view key) const;
  // The same, saying whether the matching entry is the megatron preset's fc1 default.
  LayoutMatch Find(absl::string_view key) const;
  // The text of the rule that matched (for reports), "replicate (default)" when none did.
  std::string Describe(absl::string_view key) const;

  std::string ToText() const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string pattern;
    std::unique_ptr<re2::RE2> re;
    Rule rule;
    bool glu_fc1_default = false;  // the megatron preset's fc1 line (text equal to the preset)
  };
  absl::Status Add(const std::string& pattern, const Rule& rule, bool front);
  // Marks the megatron preset's fc1 entries as GLU-inferable when `text` is the preset's text.
  void MarkPresetDefaults(absl::string_view text);
  std::vector<Entry> entries_;
  int64_t program_size_ = 0;  // RE2 instructions of all patterns (<= kMaxLayoutProgramSize)
};

}  // namespace shardcast

#endif  // SHARDCAST_RESHARD_LAYOUT_H_
