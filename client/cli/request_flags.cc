// AddRequestFlags / RequestFromFlags: one definition of the request flags.
#include "client/cli/request_flags.h"

#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/manifest_json.h"
#include "common/safe_file.h"
#include "common/status_macros.h"
#include "common/text_escape.h"
#include "reshard/layout.h"

namespace shardcast::cli {
namespace {

// Compiles --layout (a preset or a local file; "" = the server's: rules only) with the --rules.
// Every error is InvalidArgument: the command line is wrong.
absl::Status CheckLayoutFlags(const ShardRequestSpec& spec) {
  std::string text;  // "" = no layout of ours (the server's)
  if (Layout::IsPreset(spec.layout)) {
    SC_ASSIGN_OR_RETURN(text, Layout::PresetText(spec.layout));
  } else if (!spec.layout.empty()) {
    absl::StatusOr<std::string> read = Layout::ReadFile(spec.layout);
    if (!read.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--layout: ", read.status().message(),
                                                     " ('shardcast layouts list' lists the presets)"));
    }
    text = *std::move(read);
  }
  const std::string source = spec.layout.empty() ? "--layout" : spec.layout;
  if (absl::Status alone = Layout::Parse(text, source).status(); !alone.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--layout: ", alone.message()));
  }
  // The layout compiles: an error now is a --rule's.
  if (absl::Status built = Layout::Build(text, source, spec.rules).status(); !built.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(absl::StartsWith(built.message(), "--rule") ? "" : "--rule: ",
                                                   built.message(),
                                                   " ('shardcast layouts show megatron' shows rules in use)"));
  }
  return absl::OkStatus();
}

// --boxes FILE: a JSON array of boxes ({"name", "key", "offsets", "sizes", "dtype"}), or an
// object with a "boxes" member, read locally. The layout flags do not apply to a box request.
absl::StatusOr<ShardRequestSpec> BoxRequestFromFlags(const ArgParser& flags) {
  std::vector<std::string> conflicting;
  for (const char* f : {"tp", "rank", "layout", "rule", "glu", "prefix", "rename", "unstack", "strict-rules"}) {
    if (flags.Has(f)) conflicting.push_back(absl::StrCat("--", f));
  }
  if (!conflicting.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--boxes names keys and offsets itself: drop ",
                                                   absl::StrJoin(conflicting, ", ")));
  }
  // Room for the JSON's punctuation and numbers around kMaxBoxRequestBytes of strings.
  absl::StatusOr<std::string> text = ReadSmallFile(flags.Get("boxes"), 4 * kMaxBoxRequestBytes, "--boxes");
  if (!text.ok()) return absl::InvalidArgumentError(text.status().message());
  const size_t first = text->find_first_not_of(" \t\r\n");
  const std::string doc = first != std::string::npos && (*text)[first] == '[' ? absl::StrCat("{\"boxes\": ", *text, "}")
                                                                            : *text;
  absl::StatusOr<ShardRequestSpec> spec = ShardRequestFromJson(doc);
  if (!spec.ok()) return absl::InvalidArgumentError(absl::StrCat("--boxes ", flags.Get("boxes"), ": ", spec.status().message()));
  if (!spec->is_box_request()) {
    return absl::InvalidArgumentError(absl::StrCat("--boxes ", flags.Get("boxes"), ": no boxes in it"));
  }
  if (flags.Has("dtype")) spec->dtype = flags.Get("dtype");
  if (absl::Status valid = ValidateShardRequest(*spec); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--boxes ", flags.Get("boxes"), ": ", valid.message()));
  }
  return spec;
}

}  // namespace

void AddRequestFlags(ArgParser& flags, const LayoutFlagDefault& layout) {
  flags.AddFlag("tp", "N", "tensor-parallel size");
  flags.AddFlag("rank", "R", "tensor-parallel rank, 0..N-1");
  flags.AddFlag("layout", "NAME|FILE", layout.help, layout.value);
  flags.AddFlag("rule", "PATTERN=RULE", "a rule that takes precedence over the layout (an unused one is warned of)", "",
                true);
  flags.AddSwitch("strict-rules", "a --rule that cuts no tensor is an error, not a warning");
  flags.AddFlag("glu", "yes|no",
                "whether the MLPs are gated (SwiGLU/GeGLU): fc1 (mlp|shared_experts.linear_fc1) as sections:0:2 "
                "(yes) or split:0 (no); default: inferred from the stored chunk grid by the megatron preset");
  flags.AddFlag("prefix", "P", "only keys starting with P");
  flags.AddFlag("rename", "OLD=NEW", "rename the name prefix OLD to NEW", "", true);
  flags.AddSwitch("unstack", "split stacked (@stacked) tensors into per-layer names ...layers.<i>.<param>");
  flags.AddFlag("dtype", "bf16|fp16|fp32", "cast floating-point shards");
  flags.AddFlag("boxes", "FILE",
                "ask for exactly these boxes instead of a TP layout: a JSON array of {\"name\", \"key\", "
                "\"offsets\": [...], \"sizes\": [...], \"dtype\"} (global offsets and sizes of stored tensors)");
}

absl::StatusOr<ShardRequestSpec> RequestFromFlags(const ArgParser& flags) {
  if (flags.Has("boxes")) return BoxRequestFromFlags(flags);
  if (!flags.Has("tp") || !flags.Has("rank")) return absl::InvalidArgumentError("--tp and --rank are required (or --boxes FILE)");
  absl::StatusOr<int64_t> tp = flags.GetInt("tp");
  if (!tp.ok()) return tp.status();
  absl::StatusOr<int64_t> rank = flags.GetInt("rank");
  if (!rank.ok()) return rank.status();
  ShardRequestSpec spec;
  spec.tp_size = *tp;
  spec.tp_rank = *rank;
  spec.layout = flags.Get("layout");
  const std::string glu = flags.Get("glu");
  if (!glu.empty() && glu != "yes" && glu != "no") {
    return absl::InvalidArgumentError(absl::StrCat("--glu must be yes or no, not '", glu, "'"));
  }
  if (!glu.empty()) spec.rules = Layout::GluRules(glu == "yes");
  for (std::string& r : flags.GetAll("rule")) spec.rules.push_back(std::move(r));
  spec.prefix = flags.Get("prefix");
  spec.renames = flags.GetAll("rename");
  spec.unstack = flags.GetSwitch("unstack");
  spec.dtype = flags.Get("dtype");
  SC_RETURN_IF_ERROR(CheckLayoutFlags(spec));
  return spec;
}

void WarnAboutNotes(const std::vector<std::string>& notes) {
  if (notes.empty()) return;
  constexpr size_t kShown = 20;
  std::cerr << "warning: the layout's rule for " << notes.size()
            << " tensor(s) was inferred or assumed (GLU fc1); settle it with --glu yes|no or --rule 'PATTERN=RULE':\n";
  for (size_t i = 0; i < notes.size() && i < kShown; ++i) std::cerr << "  " << EscapeForTerminal(notes[i]) << "\n";
  if (notes.size() > kShown) std::cerr << "  ... and " << notes.size() - kShown << " more\n";
}

}  // namespace shardcast::cli
