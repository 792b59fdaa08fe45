// MemorySpace: the owning Buffer (freed exactly once, moves transfer ownership), slab packing,
// the host space's allocations, and MemAvailable parsing for the default budget.
#include "server/memory_space.h"

#include <cstdint>
#include <utility>

#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

int frees = 0;
void* last_freed = nullptr;
void CountFree(void* p) {
  ++frees;
  last_freed = p;
}

class BufferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    frees = 0;
    last_freed = nullptr;
  }
  char a_[8], b_[8];
};

TEST_F(BufferTest, FreesOnceWhenItGoes) {
  {
    Buffer buf(a_, sizeof(a_), &CountFree);
    EXPECT_EQ(buf.data(), a_);
    EXPECT_EQ(buf.size(), sizeof(a_));
    EXPECT_TRUE(buf);
  }
  EXPECT_EQ(frees, 1);
  EXPECT_EQ(last_freed, a_);
}

TEST_F(BufferTest, AMoveTransfersOwnership) {
  Buffer from(a_, sizeof(a_), &CountFree);
  Buffer to(std::move(from));
  EXPECT_FALSE(from);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  EXPECT_EQ(to.data(), a_);
  from.Reset();
  EXPECT_EQ(frees, 0);
  to.Reset();
  EXPECT_EQ(frees, 1);
  EXPECT_FALSE(to);
  to.Reset();  // empty: nothing more
  EXPECT_EQ(frees, 1);
}

TEST_F(BufferTest, MoveAssignmentFreesWhatWasHeld) {
  Buffer held(a_, sizeof(a_), &CountFree);
  held = Buffer(b_, sizeof(b_), &CountFree);
  EXPECT_EQ(frees, 1);
  EXPECT_EQ(last_freed, a_);
  EXPECT_EQ(held.data(), b_);
}

TEST(PackSlab, AlignsEveryOffset) {
  std::vector<uint64_t> offsets;
  EXPECT_EQ(PackSlab({1, 256, 257, 0, 3}, &offsets), 256u + 256 + 512 + 0 + 256);
  EXPECT_EQ(offsets, (std::vector<uint64_t>{0, 256, 512, 1024, 1024}));
  EXPECT_EQ(PackSlab({}, &offsets), 0u);
  EXPECT_TRUE(offsets.empty());
}

TEST(HostMemorySpace, AllocationsAreAlignedWritableAndFreedByTheBuffer) {
  std::unique_ptr<MemorySpace> host = NewHostMemorySpace();
  SC_ASSERT_OK_AND_ASSIGN(Buffer buf, host->Allocate(1 << 20));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % 64, 0u);
  EXPECT_EQ(buf.size(), 1u << 20);
  std::string in(1 << 20, 'x'), out(1 << 20, '\0');
  SC_ASSERT_OK(host->CopyIn(buf.data(), in.data(), in.size()));
  SC_ASSERT_OK(host->CopyOut(out.data(), buf.data(), out.size()));
  EXPECT_EQ(in, out);
  SC_ASSERT_OK_AND_ASSIGN(Buffer staging, host->AllocateStaging(0));  // an empty request still gets a block
  EXPECT_TRUE(staging);
  // Freed by the destructors: LeakSanitizer (--config=asan) reports it otherwise.
}

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
