#include "reshard/layout.h"

#include <re2/re2.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/safe_file.h"
#include "common/shard_request.h"
#include "common/status_macros.h"

namespace shardcast {

std::string Rule::ToString() const {
  std::string s;
  switch (kind) {
    case Kind::kReplicate: s = "replicate"; break;
    case Kind::kOpaque: s = "opaque"; break;
    case Kind::kSplit: s = absl::StrCat("split:", dim); break;
    case Kind::kSections:
      s = section_sizes.empty() ? absl::StrCat("sections:", dim, ":", num_sections)
                                : absl::StrCat("sections:", dim, ":", absl::StrJoin(section_sizes, ","));
      break;
    case Kind::kQkv: s = heads ? absl::StrCat("qkv:", heads, ":", groups) : "qkv"; break;
    case Kind::kVocab: s = absl::StrCat("vocab:", dim, ":", multiple); break;
  }
  if (stacked) s += "@stacked";
  return s;
}

namespace {

// Parses a decimal int64 in [lo, hi]: no narrowing, no wrap-around ("4294967296" stays that).
bool ParseInRange(absl::string_view s, int64_t lo, int64_t hi, int64_t* out) {
  return absl::SimpleAtoi(s, out) && *out >= lo && *out <= hi;
}

// The arguments of each rule kind, parsed into `r`. Each returns why they are wrong ("" when
// they are right); ParseRule names the rule and lists the grammar around it.
std::string ParseDim(const std::string& s, Rule& r) {
  int64_t d;
  if (!ParseInRange(s, 0, kMaxRuleDim, &d)) {
    return absl::StrCat("the dim D must be an integer in 0..", kMaxRuleDim, ", not '", s.substr(0, 32), "'");
  }
  r.dim = static_cast<int>(d);
  return "";
}

std::string ParseSectionArgs(const std::vector<std::string>& parts, Rule& r) {
  if (parts.size() != 3) return "expected sections:D:N or sections:D:a,b,c";
  if (std::string why = ParseDim(parts[1], r); !why.empty()) return why;
  if (!absl::StrContains(parts[2], ',')) {
    int64_t n;
    if (!ParseInRange(parts[2], 1, kMaxSections, &n)) {
      return absl::StrCat("the section count N must be an integer in 1..", kMaxSections);
    }
    r.num_sections = static_cast<int>(n);
    return "";
  }
  for (absl::string_view s : absl::StrSplit(parts[2], ',')) {
    if (static_cast<int64_t>(r.section_sizes.size()) == kMaxSections) {
      return absl::StrCat("more than ", kMaxSections, " sections");
    }
    int64_t size;
    if (!ParseInRange(s, 1, kMaxSectionSize, &size)) {
      return absl::StrCat("section sizes must be integers in 1..", kMaxSectionSize);
    }
    r.section_sizes.push_back(size);
  }
  r.num_sections = static_cast<int>(r.section_sizes.size());
  return "";
}

std::string ParseQkvArgs(const std::vector<std::string>& parts, Rule& r) {
  if (parts.size() == 1) return "";
  if (parts.size() != 3) return "expected qkv or qkv:HEADS:GROUPS";
  int64_t h, g;
  if (!ParseInRange(parts[1], 1, kMaxQkvHeads, &h) || !ParseInRange(parts[2], 1, kMaxQkvHeads, &g)) {
    return absl::StrCat("HEADS and GROUPS must be integers in 1..", kMaxQkvHeads);
  }
  if (h % g != 0) return "HEADS must be a multiple of GROUPS";
  r.heads = static_cast<int>(h);
  r.groups = static_cast<int>(g);
  return "";
}

std::string ParseVocabArgs(const std::vector<std::string>& parts, Rule& r) {
  if (parts.size() != 3) return "expected vocab:D:M";
  if (std::string why = ParseDim(parts[1], r); !why.empty()) return why;
  if (!ParseInRange(parts[2], 1, kMaxVocabMultiple, &r.multiple)) {
    return absl::StrCat("the multiple M must be an integer in 1..", kMaxVocabMultiple);
  }
  return "";
}

// Sets r.kind from the rule's name and parses its arguments; returns why they are wrong.
std::string ParseKindAndArgs(const std::vector<std::string>& parts, Rule& r) {
  const std::string& name = parts[0];
  if (name == "replicate" || name == "opaque") {
    if (parts.size() != 1) return "takes no arguments";
    r.kind = name == "replicate" ? Rule::Kind::kReplicate : Rule::Kind::kOpaque;
    if (r.stacked && r.kind == Rule::Kind::kOpaque) return "@stacked makes no sense for opaque";
    return "";
  }
  if (name == "split") {
    r.kind = Rule::Kind::kSplit;
    return parts.size() != 2 ? "expected split:D" : ParseDim(parts[1], r);
  }
  if (name == "sections") {
    r.kind = Rule::Kind::kSections;
    return ParseSectionArgs(parts, r);
  }
  if (name == "qkv") {
    r.kind = Rule::Kind::kQkv;
    return ParseQkvArgs(parts, r);
  }
  if (name == "vocab") {
    r.kind = Rule::Kind::kVocab;
    return ParseVocabArgs(parts, r);
  }
  return "unknown rule";
}

}  // namespace

absl::StatusOr<Rule> ParseRule(absl::string_view text_in) {
  std::string text(absl::StripAsciiWhitespace(text_in));
  Rule r;
  if (absl::EndsWith(text, "@stacked")) {
    r.stacked = true;
    text.resize(text.size() - 8);
  }
  const std::vector<std::string> parts = absl::StrSplit(text, ':');
  const std::string why = ParseKindAndArgs(parts, r);
  if (why.empty()) return r;
  return absl::InvalidArgumentError(absl::StrCat("rule '", text_in.substr(0, 128), text_in.size() > 128 ? "..." : "",
                                                 "': ", why,
                                                 " (rules: replicate, split:D, sections:D:N, sections:D:a,b,..., "
                                                 "qkv[:HEADS:GROUPS], vocab:D:M, opaque; optional @stacked)"));
}

Layout::Layout() = default;
Layout::~Layout() = default;
Layout::Layout(Layout&&) noexcept = default;
Layout& Layout::operator=(Layout&&) noexcept = default;

absl::Status Layout::Add(const std::string& pattern, const Rule& rule, bool front) {
  Entry e;
  e.pattern = pattern;
  if (pattern.size() > kMaxPatternBytes) {
    return absl::InvalidArgumentError(absl::StrCat("pattern of ", pattern.size(), " bytes, more than the limit of ",
                                                   kMaxPatternBytes, " (README: Request limits)"));
  }
  if (entries_.size() >= kMaxLayoutEntries + kMaxRules) {
    return absl::InvalidArgumentError(absl::StrCat("more than ", kMaxLayoutEntries + kMaxRules, " layout rules"));
  }
  RE2::Options opts;
  opts.set_log_errors(false);
  // A bounded program (and DFA cache) per pattern: a heavy pattern fails to compile instead of
  // taking seconds and megabytes.
  opts.set_max_mem(kPatternMaxMemBytes);
  e.re = std::make_unique<RE2>(pattern, opts);
  if (!e.re->ok()) {
    return absl::InvalidArgumentError(absl::StrCat("bad pattern '", pattern, "': ", e.re->error(),
                                                   e.re->error_code() == RE2::ErrorPatternTooLarge
                                                       ? absl::StrCat(" (over RE2's max_mem of ", kPatternMaxMemBytes,
                                                                      " bytes per pattern)")
                                                       : ""));
  }
  // Compile time grows with the program: bound the whole layout's, so one request's patterns
  // cost milliseconds, not seconds.
  program_size_ += e.re->ProgramSize();
  if (program_size_ > kMaxLayoutProgramSize) {
    return absl::InvalidArgumentError(absl::StrCat("pattern '", pattern.substr(0, 64), "': the layout's patterns compile to more than ",
                                                   kMaxLayoutProgramSize, " RE2 instructions (README: Request limits)"));
  }
  e.rule = rule;
  if (front) {
    entries_.insert(entries_.begin(), std::move(e));
  } else {
    entries_.push_back(std::move(e));
  }
  return absl::OkStatus();
}

absl::Status Layout::Prepend(const std::string& pattern, const Rule& rule) { return Add(pattern, rule, true); }

absl::StatusOr<Layout> Layout::Parse(absl::string_view text, absl::string_view source) {
  if (text.size() > kMaxLayoutTextBytes) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", text.size(), " bytes, more than the limit of ",
                                                   kMaxLayoutTextBytes, " for a layout (README: Request limits)"));
  }
  Layout layout;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<std::string> fields = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (layout.size() == kMaxLayoutEntries) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_no, ": more than ", kMaxLayoutEntries, " rules (README: Request limits)"));
    }
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_no, ": expected 'PATTERN  RULE', found '", line, "'"));
    }
    absl::StatusOr<Rule> rule = ParseRule(fields[1]);
    if (!rule.ok()) return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no, ": ", rule.status().message()));
    absl::Status s = layout.Add(fields[0], *rule, false);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no, ": ", s.message()));
  }
  layout.MarkPresetDefaults(text);
  return layout;
}

namespace {

// Megatron-Core / Megatron-Bridge TP rules (docs/megatron-layouts.md §6 in the shared docs).
// Layer-scoped suffixes get three lines: per-layer keys (`layers.<i>.`), stacked keys (`layers.`
// + a leading [L] axis, hence @stacked, also for replicated tensors so that --unstack can split
// them), and keys outside any layer stack.
struct PresetLine {
  const char* suffix;
  const char* rule;
  bool layer_scoped;
  bool glu_fc1 = false;  // fc1: split:0, or sections:0:2 when the stored grid shows GLU halves
};

constexpr PresetLine kMegatron[] = {
    {R"(_extra_state(/.*)?)", "opaque", false},
    {R"((.*\.)?layer_norm_(weight|bias))", "replicate", true},
    {R"((.*\.)?(input_layernorm|pre_mlp_layernorm|pre_cross_attn_layernorm|final_layernorm|final_norm|ln_pre|ln_post|q_layernorm|k_layernorm)\.(weight|bias))",
     "replicate", true},
    {R"(self_attention\.linear_qkv\.(weight|bias))", "qkv", true},
    {R"(self_attention\.linear_proj\.weight)", "split:1", true},
    {R"((.*\.)?(linear_proj|linear_fc2|out_proj)\.bias)", "replicate", true},
    {R"((mlp|shared_experts)\.linear_fc1\.(weight|bias))", "split:0", true, true},
    {R"((mlp|shared_experts)\.linear_fc2\.weight)", "split:1", true},
    {R"(core_attention\.softmax_offset)", "split:0", true},
    {R"(mixer\.in_proj\.weight\.(z|x|B|C|dt))", "split:0", true},
    {R"(mixer\.conv1d\.(weight|bias)\.(x|B|C))", "split:0", true},
    {R"(mixer\.(A_log|D|dt_bias|norm\.weight))", "split:0", true},
    {R"(mixer\.out_proj\.weight)", "split:1", true},
    {R"(mlp\.router\.(weight|expert_bias))", "replicate", true},
    {R"(embedding\.word_embeddings\.weight)", "vocab:0:128", false},
    {R"(output_layer\.(weight|bias))", "vocab:0:128", false},
    {R"(embedding\.position_embeddings\.weight)", "replicate", false},
    {R"((embedder|video_embedder)\.(weight|bias))", "split:0", false},
    {R"((class_token|position_embeddings|mask_token|ls1|ls2))", "replicate", false},
    {R"(vision_projection\.encoder\.linear_fc1\.(weight|bias))", "split:0", false},
    {R"(vision_projection\.encoder\.linear_fc2\.weight)", "split:1", false},
};

// The patterns of one preset line, each with whether its rule takes @stacked: per-layer keys,
// stacked keys and unscoped keys for a layer-scoped line, else the unscoped pattern only.
std::vector<std::pair<std::string, bool>> PresetPatterns(const PresetLine& l) {
  std::vector<std::pair<std::string, bool>> out;
  if (l.layer_scoped) {
    out.emplace_back(absl::StrCat(R"(.*\.layers\.[0-9]+\.)", l.suffix), false);
    out.emplace_back(absl::StrCat(R"(.*\.layers\.)", l.suffix), true);
  }
  out.emplace_back(absl::StrCat(R"((.*\.)?)", l.suffix), false);
  return out;
}

std::string MegatronPresetText() {
  std::string out =
      "# shardcast layout preset 'megatron': Megatron-Core TP rules (RADIO encoder included).\n"
      "# First match wins; unmatched tensors are replicated. GLU (SwiGLU) MLPs store fc1 as [gate; up]:\n"
      "# with this preset unchanged, fc1 becomes sections:0:2 (@stacked) when the stored chunk grid shows\n"
      "# the two halves (saved by Megatron at TP T: 2T dim-0 chunks); otherwise split:0 is assumed and\n"
      "# the manifest says so. Settle it with  --glu yes|no  or  --rule '<pattern>=sections:0:2'.\n";
  for (const PresetLine& l : kMegatron) {
    for (const auto& [pattern, stacked] : PresetPatterns(l)) {
      absl::StrAppendFormat(&out, "%-90s %s%s\n", pattern, l.rule, stacked ? "@stacked" : "");
    }
  }
  return out;
}

// The fc1 patterns of the megatron preset, whose entries may be inferred as GLU sections.
const std::vector<std::string>& GluFc1Patterns() {
  static const auto* patterns = [] {
    auto* v = new std::vector<std::string>;
    for (const PresetLine& l : kMegatron) {
      if (l.glu_fc1) {
        for (auto& p : PresetPatterns(l)) v->push_back(std::move(p.first));
      }
    }
    return v;
  }();
  return *patterns;
}

}  // namespace

void Layout::MarkPresetDefaults(absl::string_view text) {
  // Only the preset's own text (a preset by name, or a byte-identical copy) carries defaults
  // that the planner may refine; any edited layout states its rules explicitly.
  if (text != MegatronPresetText()) return;
  const std::vector<std::string>& fc1 = GluFc1Patterns();
  for (Entry& e : entries_) {
    e.glu_fc1_default = std::find(fc1.begin(), fc1.end(), e.pattern) != fc1.end();
  }
}

std::vector<std::string> Layout::GluRules(bool gated) {
  std::vector<std::string> out;
  for (const PresetLine& l : kMegatron) {
    if (!l.glu_fc1) continue;
    // Later rules take precedence: the stacked pattern (which the unscoped one also matches) last.
    std::vector<std::pair<std::string, bool>> patterns = PresetPatterns(l);
    std::stable_partition(patterns.begin(), patterns.end(), [](const auto& p) { return !p.second; });
    for (const auto& [pattern, stacked] : patterns) {
      out.push_back(absl::StrCat(pattern, "=", gated ? "sections:0:2" : "split:0", stacked ? "@stacked" : ""));
    }
  }
  return out;
}

std::vector<std::string> Layout::PresetNames() { return {"megatron", "replicate"}; }

bool Layout::IsPreset(absl::string_view name) {
  for (const std::string& p : PresetNames()) {
    if (p == name) return true;
  }
  return false;
}

absl::StatusOr<std::string> Layout::PresetText(absl::string_view name) {
  if (name == "megatron") return MegatronPresetText();
  if (name == "replicate") return std::string("# shardcast layout preset 'replicate': every tensor whole.\n");
  return absl::NotFoundError(absl::StrCat("no layout preset '", name.substr(0, kMaxLayoutNameBytes), "' (presets: ",
                                          absl::StrJoin(PresetNames(), ", "), ")"));
}

absl::StatusOr<Layout> Layout::Preset(absl::string_view name) {
  SC_ASSIGN_OR_RETURN(const std::string text, PresetText(name));
  return Parse(text, absl::StrCat("preset ", name));
}

absl::StatusOr<std::string> Layout::ReadFile(const std::string& path) {
  // Regular files only, opened without blocking (a FIFO would block, /dev/zero never ends), and
  // the size cap checked before anything is allocated.
  absl::StatusOr<std::string> text = ReadSmallFile(path, kMaxLayoutTextBytes, "layout file");
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(absl::StrCat("layout '", path, "' is neither a preset (", absl::StrJoin(PresetNames(), ", "),
                                            ") nor a readable file: ", text.status().message()));
  }
  // Not a regular file, or too large: a bad layout argument (what callers have always been told).
  if (absl::IsFailedPrecondition(text.status()) || absl::IsResourceExhausted(text.status())) {
    return absl::InvalidArgumentError(text.status().message());
  }
  return text;
}

absl::StatusOr<Layout> Layout::Build(absl::string_view text, absl::string_view source,
                                     const std::vector<std::string>& rules) {
  if (rules.size() > kMaxRules) {
    return absl::InvalidArgumentError(absl::StrCat("rules: ", rules.size(), " entries, more than the limit of ",
                                                   kMaxRules, " (README: Request limits)"));
  }
  SC_ASSIGN_OR_RETURN(Layout layout, Parse(text, source));
  // --rule flags: the last one given takes precedence over earlier ones.
  for (const std::string& r : rules) {
    size_t eq = r.rfind('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--rule '", r.substr(0, 128), "': expected PATTERN=RULE"));
    }
    absl::StatusOr<Rule> rule = ParseRule(r.substr(eq + 1));
    if (!rule.ok()) return absl::InvalidArgumentError(absl::StrCat("--rule: ", rule.status().message()));
    SC_RETURN_IF_ERROR(layout.Prepend(r.substr(0, eq), *rule));
  }
  return layout;
}

absl::StatusOr<Layout> Layout::Load(const std::string& name_or_file, const std::vector<std::string>& rules) {
  if (IsPreset(name_or_file)) {
    SC_ASSIGN_OR_RETURN(const std::string text, PresetText(name_or_file));
    return Build(text, absl::StrCat("preset ", name_or_file), rules);
  }
  SC_ASSIGN_OR_RETURN(const std::string text, ReadFile(name_or_file));
  return Build(text, name_or_file, rules);
}

absl::StatusOr<RequestLayoutSource> ResolveRequestLayout(const ShardRequestSpec& spec) {
  RequestLayoutSource out;
  if (!spec.layout_text.empty()) {
    if (!spec.layout.empty()) {
      return absl::InvalidArgumentError("layout and layout_text: give a preset name or a layout's text, not both");
    }
    out.text = spec.layout_text;
    out.source = "layout_text";
    return out;
  }
  if (spec.layout.empty()) {
    out.server_default = true;
    return out;
  }
  if (!Layout::IsPreset(spec.layout)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layout: '", spec.layout.substr(0, kMaxLayoutNameBytes), "' is not a preset (",
        absl::StrJoin(Layout::PresetNames(), ", "),
        "); the service opens no file a request names: send the layout's text instead (layout_text; the shardcast "
        "CLI and the client libraries read a local layout file and send its text)"));
  }
  SC_ASSIGN_OR_RETURN(out.text, Layout::PresetText(spec.layout));
  out.source = spec.layout;
  return out;
}

const Rule* Layout::Match(absl::string_view key) const { return Find(key).rule; }

LayoutMatch Layout::Find(absl::string_view key) const {
  for (const Entry& e : entries_) {
    if (RE2::FullMatch(re2::StringPiece(key.data(), key.size()), *e.re)) return LayoutMatch{&e.rule, e.glu_fc1_default};
  }
  return LayoutMatch{};
}

std::string Layout::Describe(absl::string_view key) const {
  const Rule* r = Match(key);
  return r ? r->ToString() : "replicate (default)";
}

std::string Layout::ToText() const {
  std::string out;
  for (const Entry& e : entries_) absl::StrAppendFormat(&out, "%-90s %s\n", e.pattern, e.rule.ToString());
  return out;
}

}  // namespace shardcast
