// AddRequestFlags / RequestFromFlags: one definition of the request flags.
#include "client/cli/request_flags.h"

#include "absl/strings/str_cat.h"

namespace shardcast::cli {

void AddRequestFlags(ArgParser& flags, const LayoutFlagDefault& layout) {
  flags.AddFlag("tp", "N", "tensor-parallel size");
  flags.AddFlag("rank", "R", "tensor-parallel rank, 0..N-1");
  flags.AddFlag("layout", "NAME|FILE", layout.help, layout.value);
  flags.AddFlag("rule", "PATTERN=RULE", "a rule that takes precedence over the layout", "", true);
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
  spec.rules = flags.GetAll("rule");
  spec.prefix = flags.Get("prefix");
  spec.renames = flags.GetAll("rename");
  spec.unstack = flags.GetSwitch("unstack");
  spec.dtype = flags.Get("dtype");
  return spec;
}

}  // namespace shardcast::cli
