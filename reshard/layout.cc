#include "reshard/layout.h"

#include <re2/re2.h>

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
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

absl::StatusOr<Rule> ParseRule(absl::string_view text_in) {
  std::string text(absl::StripAsciiWhitespace(text_in));
  Rule r;
  if (absl::EndsWith(text, "@stacked")) {
    r.stacked = true;
    text.resize(text.size() - 8);
  }
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("rule '", text_in, "': ", why,
                                                   " (rules: replicate, split:D, sections:D:N, sections:D:a,b,..., "
                                                   "qkv[:HEADS:GROUPS], vocab:D:M, opaque; optional @stacked)"));
  };
  auto num = [&](const std::string& s, int64_t* out) { return absl::SimpleAtoi(s, out) && *out >= 0; };
  const std::string& name = parts[0];
  int64_t v = 0;
  if (name == "replicate" || name == "opaque") {
    if (parts.size() != 1) return bad("takes no arguments");
    r.kind = name == "replicate" ? Rule::Kind::kReplicate : Rule::Kind::kOpaque;
    if (r.stacked && r.kind == Rule::Kind::kOpaque) return bad("@stacked makes no sense for opaque");
    return r;
  }
  if (name == "split") {
    if (parts.size() != 2 || !num(parts[1], &v)) return bad("expected split:D");
    r.kind = Rule::Kind::kSplit;
    r.dim = static_cast<int>(v);
    return r;
  }
  if (name == "sections") {
    if (parts.size() != 3 || !num(parts[1], &v)) return bad("expected sections:D:N or sections:D:a,b,c");
    r.kind = Rule::Kind::kSections;
    r.dim = static_cast<int>(v);
    if (absl::StrContains(parts[2], ',')) {
      for (absl::string_view s : absl::StrSplit(parts[2], ',')) {
        int64_t size;
        if (!absl::SimpleAtoi(s, &size) || size <= 0) return bad("section sizes must be positive integers");
        r.section_sizes.push_back(size);
      }
      r.num_sections = static_cast<int>(r.section_sizes.size());
    } else {
      if (!num(parts[2], &v) || v < 1) return bad("the section count must be a positive integer");
      r.num_sections = static_cast<int>(v);
    }
    return r;
  }
  if (name == "qkv") {
    r.kind = Rule::Kind::kQkv;
    if (parts.size() == 1) return r;
    int64_t h, g;
    if (parts.size() != 3 || !num(parts[1], &h) || !num(parts[2], &g) || h < 1 || g < 1) {
      return bad("expected qkv or qkv:HEADS:GROUPS");
    }
    if (h % g != 0) return bad("HEADS must be a multiple of GROUPS");
    r.heads = static_cast<int>(h);
    r.groups = static_cast<int>(g);
    return r;
  }
  if (name == "vocab") {
    int64_t m;
    if (parts.size() != 3 || !num(parts[1], &v) || !num(parts[2], &m) || m < 1) return bad("expected vocab:D:M");
    r.kind = Rule::Kind::kVocab;
    r.dim = static_cast<int>(v);
    r.multiple = m;
    return r;
  }
  return bad("unknown rule");
}

Layout::Layout() = default;
Layout::~Layout() = default;
Layout::Layout(Layout&&) noexcept = default;
Layout& Layout::operator=(Layout&&) noexcept = default;

absl::Status Layout::Add(const std::string& pattern, const Rule& rule, bool front) {
  Entry e;
  e.pattern = pattern;
  RE2::Options opts;
  opts.set_log_errors(false);
  e.re = std::make_unique<RE2>(pattern, opts);
  if (!e.re->ok()) {
    return absl::InvalidArgumentError(absl::StrCat("bad pattern '", pattern, "': ", e.re->error()));
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
  Layout layout;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (size_t hash = line.find('#'); hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    std::vector<std::string> fields = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_no, ": expected 'PATTERN  RULE', found '", line, "'"));
    }
    absl::StatusOr<Rule> rule = ParseRule(fields[1]);
    if (!rule.ok()) return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no, ": ", rule.status().message()));
    absl::Status s = layout.Add(fields[0], *rule, false);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no, ": ", s.message()));
  }
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
};

constexpr PresetLine kMegatron[] = {
    {R"(_extra_state(/.*)?)", "opaque", false},
    {R"((.*\.)?layer_norm_(weight|bias))", "replicate", true},
    {R"((.*\.)?(input_layernorm|pre_mlp_layernorm|pre_cross_attn_layernorm|final_layernorm|final_norm|ln_pre|ln_post|q_layernorm|k_layernorm)\.(weight|bias))",
     "replicate", true},
    {R"(self_attention\.linear_qkv\.(weight|bias))", "qkv", true},
    {R"(self_attention\.linear_proj\.weight)", "split:1", true},
    {R"((.*\.)?(linear_proj|linear_fc2|out_proj)\.bias)", "replicate", true},
    {R"((mlp|shared_experts)\.linear_fc1\.(weight|bias))", "split:0", true},
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

std::string MegatronPresetText() {
  std::string out =
      "# shardcast layout preset 'megatron': Megatron-Core TP rules (RADIO encoder included).\n"
      "# First match wins; unmatched tensors are replicated. GLU (SwiGLU) MLPs store fc1 as [gate; up]:\n"
      "# add  --rule '<pattern>=sections:0:2'  for those models (RADIO-H is not GLU, radio-g is).\n";
  for (const PresetLine& l : kMegatron) {
    if (l.layer_scoped) {
      absl::StrAppendFormat(&out, "%-90s %s\n", absl::StrCat(R"(.*\.layers\.[0-9]+\.)", l.suffix), l.rule);
      absl::StrAppendFormat(&out, "%-90s %s@stacked\n", absl::StrCat(R"(.*\.layers\.)", l.suffix), l.rule);
    }
    absl::StrAppendFormat(&out, "%-90s %s\n", absl::StrCat(R"((.*\.)?)", l.suffix), l.rule);
  }
  return out;
}

}  // namespace

std::vector<std::string> Layout::PresetNames() { return {"megatron", "replicate"}; }

absl::StatusOr<Layout> Layout::Preset(absl::string_view name) {
  if (name == "megatron") return Parse(MegatronPresetText(), "preset megatron");
  if (name == "replicate") return Layout();
  return absl::NotFoundError(absl::StrCat("no layout preset '", name, "' (presets: ", absl::StrJoin(PresetNames(), ", "), ")"));
}

absl::StatusOr<Layout> Layout::Load(const std::string& name_or_file, const std::vector<std::string>& rules) {
  Layout layout;
  bool is_preset = false;
  for (const std::string& p : PresetNames()) is_preset |= (p == name_or_file);
  if (is_preset) {
    SC_ASSIGN_OR_RETURN(layout, Preset(name_or_file));
  } else {
    std::ifstream in(name_or_file);
    if (!in) {
      return absl::NotFoundError(absl::StrCat("--layout '", name_or_file, "' is neither a preset (",
                                              absl::StrJoin(PresetNames(), ", "), ") nor a readable file"));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    SC_ASSIGN_OR_RETURN(layout, Parse(ss.str(), name_or_file));
  }
  // --rule flags: the last one given takes precedence over earlier ones.
  for (const std::string& r : rules) {
    size_t eq = r.rfind('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(absl::StrCat("--rule '", r, "': expected PATTERN=RULE"));
    }
    absl::StatusOr<Rule> rule = ParseRule(r.substr(eq + 1));
    if (!rule.ok()) return absl::InvalidArgumentError(absl::StrCat("--rule: ", rule.status().message()));
    SC_RETURN_IF_ERROR(layout.Prepend(r.substr(0, eq), *rule));
  }
  return layout;
}

const Rule* Layout::Match(absl::string_view key) const {
  for (const Entry& e : entries_) {
    if (RE2::FullMatch(re2::StringPiece(key.data(), key.size()), *e.re)) return &e.rule;
  }
  return nullptr;
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
