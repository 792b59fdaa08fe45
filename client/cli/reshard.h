// `shardcast reshard`: one TP rank's shards of a checkpoint, cut by a layout, produced by the CPU
// or CUDA executor, written as safetensors or digested.
#ifndef SHARDCAST_CLIENT_CLI_RESHARD_H_
#define SHARDCAST_CLIENT_CLI_RESHARD_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/reader.h"
#include "common/dtype.h"
#include "reshard/executor.h"
#include "reshard/planner.h"

namespace shardcast::cli {

// Produces every shard of `plan` in host memory, in batches of about `batch_bytes`, and hands each
// (shard, bytes) to `sink` in plan order. Sources are read straight from the checkpoint: only the
// boxes the plan's ops need. `dtype` (if set) casts floating-point shards.
absl::Status MaterializeShards(CheckpointReader& reader, const RankPlan& plan, ShardExecutor& executor,
                               std::optional<DType> dtype, uint64_t batch_bytes,
                               const std::function<absl::Status(const ShardPlan&, DType, absl::string_view)>& sink);

int RunReshard(const std::vector<std::string>& args);
int RunLayouts(const std::vector<std::string>& args);

}  // namespace shardcast::cli

#endif  // SHARDCAST_CLIENT_CLI_RESHARD_H_
