#include "server/slab_arena.h"

#include <cstdlib>
#include <random>
#include <vector>

#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

// Blocks of host memory, counted.
struct Blocks {
  int allocated = 0;
  SlabArena::AllocateBlock Allocator() {
    return [this](uint64_t n) -> absl::StatusOr<Buffer> {
      ++allocated;
      return Buffer(std::malloc(n), n, [](void* p) { std::free(p); });
    };
  }
};

TEST(SlabArenaTest, RangesComeFromOneBlockUntilItIsFull) {
  Blocks blocks;
  SlabArena arena(blocks.Allocator(), 0, 4096);
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab a, arena.Allocate(1000));
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab b, arena.Allocate(1000));
  EXPECT_EQ(blocks.allocated, 1);
  EXPECT_EQ(a.size(), 1024u);  // rounded to kSlabAlign
  EXPECT_EQ(a.block_base(), b.block_base());
  EXPECT_EQ(b.data() - a.data(), 1024);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % kSlabAlign, reinterpret_cast<uintptr_t>(a.data()) % kSlabAlign);
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab c, arena.Allocate(3000));  // 2048 left: a new block
  EXPECT_EQ(blocks.allocated, 2);
  EXPECT_NE(c.block_base(), a.block_base());
  EXPECT_EQ(arena.block_bytes(), 8192u);
  EXPECT_EQ(arena.used_bytes(), 1024u + 1024u + 3072u);
}

TEST(SlabArenaTest, AGivenBackRangeIsReusedAndNeighboursJoin) {
  Blocks blocks;
  SlabArena arena(blocks.Allocator(), 0, 4096);
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab a, arena.Allocate(1024));
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab b, arena.Allocate(1024));
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab c, arena.Allocate(2048));
  char* const start = a.data();
  a.Reset();
  b.Reset();  // joins a's range: 2048 free at the start
  EXPECT_EQ(arena.used_bytes(), 2048u);
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab d, arena.Allocate(2048));
  EXPECT_EQ(d.data(), start);
  EXPECT_EQ(blocks.allocated, 1);
  c.Reset();
  d.Reset();
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab whole, arena.Allocate(4096));  // everything joined again
  EXPECT_EQ(whole.data(), start);
  EXPECT_EQ(blocks.allocated, 1);
}

TEST(SlabArenaTest, BestFitKeepsTheLargeRangeWhole) {
  Blocks blocks;
  SlabArena arena(blocks.Allocator(), 0, 8192);
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab a, arena.Allocate(256));
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab hold, arena.Allocate(256));
  char* const small_hole = a.data();
  a.Reset();  // free: 256 at 0, 7680 after `hold`
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab b, arena.Allocate(200));
  EXPECT_EQ(b.data(), small_hole);
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab big, arena.Allocate(7680));
  EXPECT_EQ(blocks.allocated, 1);
}

TEST(SlabArenaTest, ARequestLargerThanTheBlockGetsABlockOfItsOwn) {
  Blocks blocks;
  SlabArena arena(blocks.Allocator(), 0, 4096);
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab a, arena.Allocate(10000));
  EXPECT_EQ(a.size(), 10240u);
  EXPECT_EQ(arena.block_bytes(), 10240u);
}

TEST(SlabArenaTest, TheCapacityBoundsTheBlocksWithTheNumbersInTheError) {
  Blocks blocks;
  SlabArena arena(blocks.Allocator(), 8192, 4096);
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab a, arena.Allocate(4096));
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab b, arena.Allocate(4096));
  absl::StatusOr<ArenaSlab> c = arena.Allocate(256);
  ASSERT_TRUE(absl::IsResourceExhausted(c.status())) << c.status();
  EXPECT_NE(c.status().message().find("room for shards, 8192"), std::string::npos) << c.status();
  EXPECT_EQ(blocks.allocated, 2);
  b.Reset();
  SC_EXPECT_OK(arena.Allocate(256).status());  // room again, in the block kept
  EXPECT_FALSE(arena.Allocate(1 << 20).ok());
}

TEST(SlabArenaTest, LessRoomThanTheSmallestBlockGivesABlockOfWhatIsLeft) {
  Blocks blocks;
  SlabArena arena(blocks.Allocator(), 6144, 4096);
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab a, arena.Allocate(4096));
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab b, arena.Allocate(1000));  // 2048 left: a block of 2048
  EXPECT_EQ(arena.block_bytes(), 6144u);
  EXPECT_EQ(arena.free_bytes(), 1024u);
  SC_ASSERT_OK_AND_ASSIGN(ArenaSlab c, arena.Allocate(1024));  // the rest of that block
  EXPECT_EQ(c.block_base(), b.block_base());
  EXPECT_FALSE(arena.Allocate(256).ok());
}

TEST(SlabArenaTest, TheBlockAllocatorsErrorComesBack) {
  SlabArena arena([](uint64_t) -> absl::StatusOr<Buffer> { return absl::ResourceExhaustedError("cudaMalloc: out of memory"); },
                  0, 4096);
  absl::StatusOr<ArenaSlab> a = arena.Allocate(10);
  EXPECT_EQ(a.status().message(), "cudaMalloc: out of memory");
  EXPECT_EQ(arena.block_count(), 0u);
}

TEST(SlabArenaTest, RangesOutliveTheArenaAndRandomUseNeverOverlaps) {
  Blocks blocks;
  std::vector<ArenaSlab> live;
  {
    SlabArena arena(blocks.Allocator(), 0, 1 << 16);
    std::mt19937 rng(7);
    for (int i = 0; i < 2000; ++i) {
      if (!live.empty() && rng() % 3 == 0) {
        live.erase(live.begin() + rng() % live.size());
        continue;
      }
      SC_ASSERT_OK_AND_ASSIGN(ArenaSlab s, arena.Allocate(1 + rng() % 5000));
      for (const ArenaSlab& o : live) {
        const bool apart = s.data() + s.size() <= o.data() || o.data() + o.size() <= s.data();
        ASSERT_TRUE(apart) << "ranges overlap";
      }
      live.push_back(std::move(s));
    }
    uint64_t sum = 0;
    for (const ArenaSlab& s : live) sum += s.size();
    EXPECT_EQ(arena.used_bytes(), sum);
  }
  for (ArenaSlab& s : live) s.data()[0] = 1;  // the blocks are still there (ASan would object)
  live.clear();
}

}  // namespace
}  // namespace shardcast
