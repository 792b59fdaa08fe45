// GPU-only (tag gpu, manual; run on a GPU host): the loader on the CUDA memory space against the
// loader in host memory, on the shared vit_tp2 fixture over two loader ranks: the tensors go
// through the pinned staging pipeline in small dim-0 slabs, and every TP 2 shard (cut by the CUDA
// executor, CRC'd on the GPU) has the bytes and the CRC32C of the host's. And the RAII buffers of
// the CUDA space give back what they take (device and pinned memory).
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/test_fixtures.h"
#include "common/crc32c.h"
#include "common/status_testutil.h"
#include "gtest/gtest.h"
#include "server/cuda_memory_space.h"
#include "server/loader.h"

namespace shardcast {
namespace {

constexpr char kFixtureLayout[] = R"(.*language_model.*mlp\.linear_fc1\.weight     sections:0:2
.*(linear_qkv|linear_fc1)\.(weight|bias)      split:0
.*embedder\.(weight|bias)                     split:0
.*word_embeddings\.weight                     split:0
.*(linear_proj|linear_fc2)\.weight            split:1
)";

std::unique_ptr<Loader> NewLoader(int rank, std::unique_ptr<MemorySpace> memory) {
  LoaderOptions o;
  o.checkpoint = testing::FixturePath("dcp-torch2.11/vit_tp2");
  o.rank = rank;
  o.world_size = 2;
  o.read_threads = 2;
  o.staging_bytes = 8192;  // far smaller than the largest tensor: dim-0 slabs through both buffers
  auto l = Loader::Create(o, std::move(memory));
  EXPECT_TRUE(l.ok()) << l.status();
  if (!l.ok()) return nullptr;
  absl::Status s = (*l)->Load();
  EXPECT_TRUE(s.ok()) << s;
  return *std::move(l);
}

std::string Bytes(Loader& l, const PreparedShard& s) {
  std::string out(s.nbytes, '\0');
  EXPECT_TRUE(l.CopyOut(s, 0, s.nbytes, out.data()).ok());
  return out;
}

TEST(LoaderGpu, ShardsOnTheGpuEqualTheHostsBytesAndCrcs) {
  for (int rank = 0; rank < 2; ++rank) {
    SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<MemorySpace> gpu_space, NewCudaMemorySpace(0));
    std::unique_ptr<Loader> gpu = NewLoader(rank, std::move(gpu_space));
    std::unique_ptr<Loader> host = NewLoader(rank, NewHostMemorySpace());
    ASSERT_NE(gpu, nullptr);
    ASSERT_NE(host, nullptr);
    EXPECT_EQ(gpu->Snapshot().state, RankState::kReady);
    for (const char* dtype : {"", "fp32"}) {
      for (int tp_rank = 0; tp_rank < 2; ++tp_rank) {
        ShardRequestSpec spec;
        spec.tp_size = 2;
        spec.tp_rank = tp_rank;
        spec.layout_text = kFixtureLayout;
        spec.dtype = dtype;
        SC_ASSERT_OK_AND_ASSIGN(auto on_gpu, gpu->Prepare(spec, "lease"));
        SC_ASSERT_OK_AND_ASSIGN(auto on_host, host->Prepare(spec));
        ASSERT_EQ(on_gpu->shards.size(), on_host->shards.size());
        int owned = 0;
        for (size_t i = 0; i < on_gpu->shards.size(); ++i) {
          const PreparedShard& g = on_gpu->shards[i];
          if (g.owner != rank) continue;
          ++owned;
          const std::string bytes = Bytes(*gpu, g);
          EXPECT_EQ(Crc32c(bytes.data(), bytes.size()), g.crc32c) << g.key;
          EXPECT_EQ(g.crc32c, on_host->shards[i].crc32c) << g.key;
          EXPECT_EQ(bytes, Bytes(*host, on_host->shards[i])) << g.key;
        }
        EXPECT_GT(owned, 0);
        gpu->EndLease("lease");
      }
    }
  }
}

TEST(CudaMemorySpace, BuffersGiveBackWhatTheyTake) {
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<MemorySpace> gpu, NewCudaMemorySpace(0));
  SC_ASSERT_OK_AND_ASSIGN(const uint64_t free_before, gpu->FreeBytes());
  // Four times the free memory, 1 GiB at a time: this only works if each Buffer frees its block.
  const uint64_t gib = 1ull << 30;
  for (uint64_t taken = 0; taken < 4 * free_before; taken += gib) {
    SC_ASSERT_OK_AND_ASSIGN(Buffer b, gpu->Allocate(gib));
    ASSERT_TRUE(b);
  }
  for (int i = 0; i < 64; ++i) {
    SC_ASSERT_OK_AND_ASSIGN(Buffer pinned, gpu->AllocateStaging(256ull << 20));
    ASSERT_TRUE(pinned);
  }
  SC_ASSERT_OK_AND_ASSIGN(const uint64_t free_after, gpu->FreeBytes());
  EXPECT_GE(free_after + (64ull << 20), free_before);
}

}  // namespace
}  // namespace shardcast
