#include "server/memory_space.h"

#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(ParseMemAvailable, ReadsTheKilobyteLine) {
  SC_ASSERT_OK_AND_ASSIGN(uint64_t n, ParseMemAvailable("MemTotal:       32768000 kB\nMemFree:  100 kB\n"
                                                         "MemAvailable:   21700424 kB\nBuffers: 1 kB\n"));
  EXPECT_EQ(n, 21700424ull * 1024);
}

TEST(ParseMemAvailable, MissingOrMalformedIsAnErrorNamingTheFlag) {
  for (const char* text : {"MemTotal: 1 kB\n", "MemAvailable: lots kB\n", ""}) {
    absl::Status s = ParseMemAvailable(text).status();
    EXPECT_FALSE(s.ok()) << text;
    EXPECT_NE(s.message().find("--memory-budget"), std::string::npos) << s;
  }
}

TEST(HostMemorySpace, ReportsFreeBytes) {
  SC_ASSERT_OK_AND_ASSIGN(uint64_t n, NewHostMemorySpace()->FreeBytes());
  EXPECT_GT(n, 0u);
}

}  // namespace
}  // namespace shardcast
