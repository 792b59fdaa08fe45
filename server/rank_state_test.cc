// RankState's wire names: the spelling the proto, JSON and status text always had, and back.
#include "server/rank_state.h"

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(RankState, NamesAreTheWireSpelling) {
  EXPECT_EQ(RankStateName(RankState::kLoading), "loading");
  EXPECT_EQ(RankStateName(RankState::kReady), "ready");
  EXPECT_EQ(RankStateName(RankState::kFailed), "failed");
  EXPECT_EQ(RankStateName(RankState::kStopping), "stopping");
}

TEST(RankState, ParseInvertsNameAndRefusesUnknownNames) {
  for (RankState s : {RankState::kLoading, RankState::kReady, RankState::kFailed, RankState::kStopping}) {
    EXPECT_EQ(ParseRankState(RankStateName(s)), s);
  }
  EXPECT_EQ(ParseRankState("Ready"), std::nullopt);
  EXPECT_EQ(ParseRankState(""), std::nullopt);
}

}  // namespace
}  // namespace shardcast
