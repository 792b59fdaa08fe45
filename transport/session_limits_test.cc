#include "transport/session_limits.h"

#include <string>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(CheckSessionId, BoundedAndPrintable) {
  EXPECT_TRUE(CheckSessionId("a1b2c3-0").ok());
  EXPECT_TRUE(CheckSessionId(std::string(kMaxSessionIdBytes, 'x')).ok());
  for (const std::string& bad : {std::string(), std::string(kMaxSessionIdBytes + 1, 'x'), std::string(1 << 20, 'x'),
                                 std::string("a b"), std::string("a\nb"), std::string("a\0b", 3)}) {
    absl::Status s = CheckSessionId(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad.size();
    EXPECT_NE(s.message().find("session_id"), std::string::npos) << s;
  }
}

TEST(CheckSessionCapacity, RefusesBeyondTheLimitWithTheNumbers) {
  EXPECT_TRUE(CheckSessionCapacity(0, kMaxNcclSessions).ok());
  EXPECT_TRUE(CheckSessionCapacity(kMaxNcclSessions - 1, kMaxNcclSessions).ok());
  absl::Status s = CheckSessionCapacity(kMaxNcclSessions, kMaxNcclSessions);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("64 NCCL sessions"), std::string::npos) << s;
}

TEST(CheckQueueCapacity, RefusesBeyondTheLimitWithTheNumbers) {
  EXPECT_TRUE(CheckQueueCapacity(0).ok());
  EXPECT_TRUE(CheckQueueCapacity(kMaxQueuedTransfers - 1).ok());
  const absl::Status s = CheckQueueCapacity(kMaxQueuedTransfers);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("16 transfers are queued"), std::string::npos) << s;
  EXPECT_EQ(CheckQueueCapacity(1u << 30, 4).code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace shardcast
