// RankState: the state of one loader rank (and of the service, as rank 0's coordinator derives
// it), and its one spelling on the wire (proto, JSON, status text).
#ifndef SHARDCAST_SERVER_RANK_STATE_H_
#define SHARDCAST_SERVER_RANK_STATE_H_

#include <optional>

#include "absl/strings/string_view.h"

namespace shardcast {

enum class RankState {
  kLoading,   // reading the checkpoint
  kReady,     // serving requests
  kFailed,    // sticky, with a reason
  kStopping,  // draining: new requests refused (the service's state; a rank never reports it)
};

// "loading", "ready", "failed", "stopping": only where the proto, JSON or status text is written.
absl::string_view RankStateName(RankState state);
// The inverse, for states read from the proto; nullopt for an unknown name.
std::optional<RankState> ParseRankState(absl::string_view name);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_RANK_STATE_H_
