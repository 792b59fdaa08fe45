// Finds the DCP folder a user means: a flat DCP folder (holding `.metadata`), or a Megatron /
// Megatron-Bridge save folder whose `latest_checkpointed_iteration.txt` names an iteration
// (`iter_%07d/`) or `release` (`release/`), or an explicit iteration.
#ifndef SHARDCAST_CHECKPOINT_RESOLVE_H_
#define SHARDCAST_CHECKPOINT_RESOLVE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace shardcast {

struct ResolvedCheckpoint {
  std::string dir;                   // the folder holding `.metadata`
  std::optional<int64_t> iteration;  // from the tracker file or --iteration
  bool release = false;              // tracker said "release"
};

// NotFound / InvalidArgument with a message that says what was found at `path` and what was
// expected. Reads only directory entries and the tracker file (at most 4 KiB, a regular file:
// ResourceExhausted / FailedPrecondition otherwise, never a blocking open).
absl::StatusOr<ResolvedCheckpoint> ResolveCheckpoint(const std::string& path, std::optional<int64_t> iteration);

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_RESOLVE_H_
