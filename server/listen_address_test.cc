#include "server/listen_address.h"

#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(SplitHostPort, HostsAndPorts) {
  SC_ASSERT_OK_AND_ASSIGN(HostPort a, SplitHostPort("127.0.0.1:0"));
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 0);
  SC_ASSERT_OK_AND_ASSIGN(HostPort b, SplitHostPort("[::1]:7070"));
  EXPECT_EQ(b.host, "[::1]");
  EXPECT_EQ(b.port, 7070);
}

TEST(SplitHostPort, RefusesWhatWouldBindEverythingOrNothing) {
  EXPECT_EQ(SplitHostPort(":7070").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitHostPort("node1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitHostPort("node1:70000").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitHostPort("::1:7070").status().code(), absl::StatusCode::kInvalidArgument);
  absl::Status s = SplitHostPort("node1:x", "--data-host").status();
  EXPECT_NE(s.message().find("--data-host"), std::string::npos) << s;
}

TEST(IsLoopbackHost, Names) {
  for (const char* h : {"localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "ip6-localhost"}) {
    EXPECT_TRUE(IsLoopbackHost(h)) << h;
  }
  for (const char* h : {"node1", "0.0.0.0", "10.0.0.1", "[::]", "127.example.com", ""}) {
    EXPECT_FALSE(IsLoopbackHost(h)) << h;
  }
}

TEST(DataPlaneHost, FlagThenLoopbackListenThenNodeName) {
  EXPECT_EQ(DataPlaneHost("10.1.2.3", "localhost", "node1"), "10.1.2.3");
  EXPECT_EQ(DataPlaneHost("", "127.0.0.1", "node1"), "127.0.0.1");
  EXPECT_EQ(DataPlaneHost("", "[::1]", "node1"), "[::1]");
  EXPECT_EQ(DataPlaneHost("", "node0", "node1"), "node1");
  EXPECT_EQ(DataPlaneHost("", "0.0.0.0", "node1"), "node1");
}

}  // namespace
}  // namespace shardcast
