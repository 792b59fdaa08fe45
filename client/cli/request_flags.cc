// AddRequestFlags / RequestFromFlags: one definition of the request flags.
#include "client/cli/request_flags.h"

#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/text_escape.h"
#include "reshard/layout.h"

namespace shardcast::cli {

void AddRequestFlags(ArgParser& flags, const LayoutFlagDefault& layout) {
  flags.AddFlag("tp", "N", "tensor-parallel size");
  flags.AddFlag("rank", "R", "tensor-parallel rank, 0..N-1");
  flags.AddFlag("layout", "NAME|FILE", layout.help, layout.value);
  flags.AddFlag("rule", "PATTERN=RULE", "a rule that takes precedence over the layout", "", true);
  flags.AddFlag("glu", "yes|no",
                "whether the MLPs are gated (SwiGLU/GeGLU): fc1 (mlp|shared_experts.linear_fc1) as sections:0:2 "
                "(yes) or split:0 (no); default: inferred from the stored chunk grid by the megatron preset");
  flags.AddFlag("prefix", "P", "only keys starting with P");
  flags.AddFlag("rename", "OLD=NEW", "rename the name prefix OLD to NEW", "", true);
  flags.AddSwitch("unstack", "split stacked (@stacked) tensors into per-layer names ...layers.<i>.<param>");
  flags.AddFlag("dtype", "bf16|fp16|fp32", "cast floating-point shards");
}

absl::StatusOr<ShardRequestSpec> RequestFromFlags(const ArgParser& flags) {
  if (!flags.Has("tp") || !flags.Has("rank")) return absl::InvalidArgumentError("--tp and --rank are required");
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
