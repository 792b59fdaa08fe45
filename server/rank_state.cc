#include "server/rank_state.h"

namespace shardcast {

absl::string_view RankStateName(RankState state) {
  switch (state) {
    case RankState::kLoading:
      return "loading";
    case RankState::kReady:
      return "ready";
    case RankState::kFailed:
      return "failed";
    case RankState::kStopping:
      return "stopping";
  }
  return "unknown";
}

std::optional<RankState> ParseRankState(absl::string_view name) {
  for (RankState s : {RankState::kLoading, RankState::kReady, RankState::kFailed, RankState::kStopping}) {
    if (RankStateName(s) == name) return s;
  }
  return std::nullopt;
}

}  // namespace shardcast
