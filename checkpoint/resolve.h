// Finds the checkpoint a user means: a flat DCP folder (holding `.metadata`), or a Megatron /
// Megatron-Bridge save folder whose `latest_checkpointed_iteration.txt` names an iteration
// (`iter_%07d/`) or `release` (`release/`), or an explicit iteration; or safetensors (Hugging
// Face layout): a folder holding one `*.safetensors.index.json` or `*.safetensors` files, or the
// path of one `.safetensors` file or index. A folder holding both `.metadata` and safetensors is
// refused, naming both.
#ifndef SHARDCAST_CHECKPOINT_RESOLVE_H_
#define SHARDCAST_CHECKPOINT_RESOLVE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shardcast {

enum class CheckpointFormat { kDcp, kSafetensors };

struct ResolvedCheckpoint {
  CheckpointFormat format = CheckpointFormat::kDcp;
  std::string dir;                   // the folder holding `.metadata` (or the safetensors files)
  // kSafetensors: the index's name in `dir` ("" when there is none), else the data files (names
  // in `dir`, sorted).
  std::string safetensors_index;
  std::vector<std::string> safetensors_files;
  std::optional<int64_t> iteration;  // from the tracker file or --iteration
  bool release = false;              // tracker said "release"
};

// NotFound / InvalidArgument with a message that says what was found at `path` and what was
// expected. Reads only directory entries and the tracker file (at most 4 KiB, a regular file:
// ResourceExhausted / FailedPrecondition otherwise, never a blocking open).
absl::StatusOr<ResolvedCheckpoint> ResolveCheckpoint(const std::string& path, std::optional<int64_t> iteration);

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_RESOLVE_H_
