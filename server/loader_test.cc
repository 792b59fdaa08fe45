// The loader as a composition, on the shared vit_tp2 fixture in host memory: states (loading ->
// ready, failed with the reason), TP 2 shards over two loader ranks against expected.json's
// digests and their own CRC32Cs, whole-tensor shards aliasing the tensors, and the cache as the
// Loader drives it: budget (shard bytes plus host bytes), the cap on cached requests, leases that
// pin a request from its manifest to its transfer (or their deadline), and draining. The cache
// requests cast to fp32 so that every shard is cut (owned bytes), each made distinct by a rename.
#include "server/loader.h"

#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "checkpoint/test_fixtures.h"
#include "common/crc32c.h"
#include "common/json.h"
#include "common/sha256.h"
#include "common/status_testutil.h"
#include "gtest/gtest.h"
#include "server/fake_device_space.h"

namespace shardcast {
namespace {

ShardRequestSpec Request(int i, const std::string& name_prefix = "") {
  ShardRequestSpec s;
  s.dtype = "fp32";
  s.renames = {"model.=" + (name_prefix.empty() ? "r" + std::to_string(i) : name_prefix) + "."};
  return s;
}

std::unique_ptr<Loader> NewLoader(uint64_t budget, size_t max_cached = 1024,
                                  std::chrono::milliseconds ttl = std::chrono::seconds(60)) {
  LoaderOptions o;
  o.checkpoint = testing::FixturePath("dcp-torch2.11/vit_tp2");
  o.memory_budget = budget;
  o.max_cached_requests = max_cached;
  o.lease_ttl = ttl;
  o.read_threads = 2;
  auto l = Loader::Create(o, NewHostMemorySpace());
  EXPECT_TRUE(l.ok()) << l.status();
  EXPECT_TRUE((*l)->Load().ok());
  return *std::move(l);
}

// Bytes of the tensors, and what one cached request adds (shards + host bytes).
std::pair<uint64_t, uint64_t> Footprint() {
  std::unique_ptr<Loader> l = NewLoader(0);
  const uint64_t tensors = l->Snapshot().memory_held;
  EXPECT_TRUE(l->Prepare(Request(0)).ok());
  return {tensors, l->Snapshot().memory_held - tensors};
}

// The rules the fixtures were cut with (tests/data/fixtures.layout).
constexpr char kFixtureLayout[] = R"(.*language_model.*mlp\.linear_fc1\.weight     sections:0:2
.*(linear_qkv|linear_fc1)\.(weight|bias)      split:0
.*embedder\.(weight|bias)                     split:0
.*word_embeddings\.weight                     split:0
.*(linear_proj|linear_fc2)\.weight            split:1
)";

LoaderOptions FixtureOptions(int rank = 0, int world_size = 1) {
  LoaderOptions o;
  o.checkpoint = testing::FixturePath("dcp-torch2.11/vit_tp2");
  o.rank = rank;
  o.world_size = world_size;
  o.read_threads = 2;
  return o;
}

// The bytes of a prepared shard, through CopyOut in two pieces.
std::string ShardBytes(Loader& l, const PreparedShard& s) {
  std::string out(s.nbytes, '\0');
  const uint64_t half = s.nbytes / 2;
  EXPECT_TRUE(l.CopyOut(s, 0, half, out.data()).ok());
  EXPECT_TRUE(l.CopyOut(s, half, s.nbytes - half, out.data() + half).ok());
  return out;
}

TEST(LoaderState, LoadingThenReady) {
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l, Loader::Create(FixtureOptions(), NewHostMemorySpace()));
  EXPECT_EQ(l->Snapshot().state, RankState::kLoading);
  EXPECT_EQ(l->Snapshot().progress.done, 0u);  // not started: nothing done, no ETA
  EXPECT_EQ(l->Snapshot().progress.percent, 0);
  EXPECT_EQ(l->Snapshot().progress.eta_seconds, -1);
  absl::Status s = l->Prepare(ShardRequestSpec{}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  SC_ASSERT_OK(l->Load());
  const RankSnapshot snap = l->Snapshot();
  EXPECT_EQ(snap.state, RankState::kReady);
  EXPECT_EQ(snap.progress.done, snap.bytes_selected);  // payload only: bytes_read also has record heads/tails
  EXPECT_EQ(snap.progress.total, snap.bytes_selected);
  EXPECT_EQ(snap.progress.percent, 100);
  EXPECT_EQ(snap.progress.eta_seconds, 0);
  EXPECT_GT(snap.bytes_read, snap.progress.done);
  EXPECT_GT(snap.load_seconds, 0);
  EXPECT_EQ(snap.leases_pinned, 0u);
  SC_ASSERT_OK(l->Prepare(ShardRequestSpec{1, 0}, "lease-1").status());
  EXPECT_EQ(l->Snapshot().leases_pinned, 1u);
  l->EndLease("lease-1");
  EXPECT_EQ(l->Snapshot().leases_pinned, 0u);
  EXPECT_EQ(snap.bytes_selected, snap.memory_held);  // one rank owns every tensor, nothing cached
  EXPECT_GT(snap.tensors_owned, 0u);
  EXPECT_EQ(snap.device, "cpu");
}

TEST(LoaderState, TensorsBeyondTheBudgetFailTheRank) {
  LoaderOptions o = FixtureOptions();
  o.memory_budget = 1000;
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l, Loader::Create(o, NewHostMemorySpace()));
  absl::Status s = l->Load();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find("more than --memory-budget 1000"), std::string::npos) << s;
  const RankSnapshot snap = l->Snapshot();
  EXPECT_EQ(snap.state, RankState::kFailed);
  EXPECT_EQ(snap.last_error, s.message());
  EXPECT_EQ(snap.progress.eta_seconds, -1);  // a failed rank will not finish
  EXPECT_LT(snap.progress.percent, 100);
  absl::Status refused = l->Prepare(ShardRequestSpec{}).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  EXPECT_NE(refused.message().find("loader rank 0 failed: rank 0 owns"), std::string::npos) << refused;
}

TEST(LoaderShards, TensorParallelShardsOfTwoRanksMatchExpectedAndTheirCrcs) {
  SC_ASSERT_OK_AND_ASSIGN(Json expected,
                          Json::Parse(testing::ReadFileOrDie(testing::FixturePath("dcp-torch2.11/expected.json"))));
  const Json& tensors = *expected.Find("tensors");
  std::vector<std::unique_ptr<Loader>> ranks;
  for (int r = 0; r < 2; ++r) {
    SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l, Loader::Create(FixtureOptions(r, 2), NewHostMemorySpace()));
    SC_ASSERT_OK(l->Load());
    ranks.push_back(std::move(l));
  }
  for (int tp_rank = 0; tp_rank < 2; ++tp_rank) {
    ShardRequestSpec spec;
    spec.tp_size = 2;
    spec.tp_rank = tp_rank;
    spec.layout_text = kFixtureLayout;
    std::set<std::string> checked;
    for (int r = 0; r < 2; ++r) {
      SC_ASSERT_OK_AND_ASSIGN(auto prepared, ranks[r]->Prepare(spec));
      EXPECT_EQ(prepared->id, ranks[1 - r]->RequestId(spec));  // the same id on every rank
      for (const PreparedShard& s : prepared->shards) {
        if (s.owner != r) continue;
        const std::string bytes = ShardBytes(*ranks[r], s);
        EXPECT_EQ(Crc32c(bytes.data(), bytes.size()), s.crc32c) << s.key;
        const Json* e = tensors.Find(s.key);
        ASSERT_NE(e, nullptr) << s.key;
        EXPECT_EQ(Sha256Hex(bytes), (*e->Find("shards")->Find("2"))[tp_rank].as_string()) << s.key << " rank " << tp_rank;
        EXPECT_TRUE(checked.insert(s.key).second) << s.key << " is owned twice";
      }
    }
    EXPECT_EQ(checked.size(), tensors.size());  // every tensor's shard, from exactly one rank
  }
}

// A box request for the boxes a split:D rule cuts gives the layout's shards, byte for byte, and a
// box's own cast gives what the request-wide cast gives.
TEST(LoaderShards, BoxRequestsGiveTheLayoutsSplitShardsAndCastPerBox) {
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l, Loader::Create(FixtureOptions(), NewHostMemorySpace()));
  SC_ASSERT_OK(l->Load());
  ShardRequestSpec layout_spec;
  layout_spec.tp_size = 2;
  layout_spec.tp_rank = 1;
  layout_spec.layout_text = kFixtureLayout;
  layout_spec.dtype = "bf16";
  SC_ASSERT_OK_AND_ASSIGN(auto by_layout, l->Prepare(layout_spec));
  ShardRequestSpec box_spec;
  std::map<std::string, const PreparedShard*> expected;
  for (const PreparedShard& s : by_layout->shards) {
    const TensorEntry* t = l->reader().metadata().FindTensor(s.key);
    ASSERT_NE(t, nullptr);
    if (!absl::StartsWith(s.rule, "split:") && !absl::StartsWith(s.rule, "replicate")) continue;
    BoxSpec b{"box." + s.name, s.key, Shape(t->shape.size(), 0), t->shape, ""};
    if (absl::StartsWith(s.rule, "split:")) {
      const int d = s.rule[6] - '0';
      b.sizes[d] = t->shape[d] / 2;
      b.offsets[d] = b.sizes[d];  // rank 1
    }
    if (CanCast(t->dtype, DType::kBFloat16)) b.dtype = "bf16";  // as the layout request casts floats
    expected[b.name] = &s;
    box_spec.boxes.push_back(b);
  }
  ASSERT_GT(box_spec.boxes.size(), 10u);
  SC_ASSERT_OK_AND_ASSIGN(auto by_box, l->Prepare(box_spec));
  EXPECT_NE(by_box->id, by_layout->id);
  EXPECT_EQ(by_box->id, l->RequestId(box_spec));
  ASSERT_EQ(by_box->shards.size(), box_spec.boxes.size());
  for (const PreparedShard& s : by_box->shards) {
    const PreparedShard& want = *expected.at(s.name);
    EXPECT_EQ(s.rule, "box");
    EXPECT_EQ(s.dtype, want.dtype) << s.name;
    EXPECT_EQ(s.crc32c, want.crc32c) << s.name;
    EXPECT_EQ(ShardBytes(*l, s), ShardBytes(*l, want)) << s.name;
  }
  // A bad box is refused naming it; nothing is cached for it.
  box_spec.boxes[0].offsets[0] = 1 << 20;
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> bad = l->Prepare(box_spec);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  EXPECT_NE(bad.status().message().find(box_spec.boxes[0].name), std::string::npos) << bad.status();
}

TEST(LoaderShards, WholeTensorShardsAliasTheTensorsAndCostNoShardBytes) {
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l, Loader::Create(FixtureOptions(), NewHostMemorySpace()));
  SC_ASSERT_OK(l->Load());
  const uint64_t tensors = l->Snapshot().memory_held;
  ShardRequestSpec spec;  // TP 1, no cast, no vocab padding
  spec.layout_text = kFixtureLayout;
  SC_ASSERT_OK_AND_ASSIGN(auto prepared, l->Prepare(spec));
  EXPECT_EQ(prepared->owned_bytes, 0u);
  EXPECT_TRUE(prepared->allocations.empty());
  ASSERT_FALSE(prepared->shards.empty());
  for (const PreparedShard& s : prepared->shards) {
    EXPECT_EQ(s.allocation, prepared->shards[0].allocation) << s.key;  // the tensors' one slab
    EXPECT_TRUE(s.resident) << s.key;  // kept until the service exits: clients may keep it mapped
    EXPECT_EQ(Crc32c(ShardBytes(*l, s).data(), s.nbytes), s.crc32c) << s.key;
  }
  EXPECT_EQ(l->Snapshot().memory_held, tensors + Loader::HostBytes(*prepared));
}

TEST(LoaderShards, OnADeviceARequestThatCutsPutsItsWholeTensorsInTheSameAllocation) {
  // A CUDA IPC client then maps that one allocation, not the rank's whole tensor slab.
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l,
                          Loader::Create(FixtureOptions(), std::make_unique<FakeDeviceSpace>()));
  SC_ASSERT_OK(l->Load());
  ShardRequestSpec tp2;
  tp2.layout_text = kFixtureLayout;
  tp2.tp_size = 2;
  SC_ASSERT_OK_AND_ASSIGN(auto prepared, l->Prepare(tp2));
  ASSERT_TRUE(prepared->arena_slab);  // a range of the rank's arena, not an allocation of its own
  EXPECT_TRUE(prepared->allocations.empty());
  int whole = 0;
  for (const PreparedShard& s : prepared->shards) {
    whole += s.rule == "replicate (default)";
    EXPECT_EQ(s.allocation, prepared->arena_slab.block_base()) << s.key;
    EXPECT_TRUE(s.resident) << s.key;  // the block stays until exit: clients keep it mapped
    EXPECT_GE(static_cast<const char*>(s.data), prepared->arena_slab.data()) << s.key;
    EXPECT_EQ(Crc32c(ShardBytes(*l, s).data(), s.nbytes), s.crc32c) << s.key;
  }
  EXPECT_GT(whole, 0);  // the fixture's norms and biases: copied, not aliased
  // A request that cuts nothing still aliases the tensors.
  ShardRequestSpec tp1;
  tp1.layout_text = kFixtureLayout;
  SC_ASSERT_OK_AND_ASSIGN(auto aliased, l->Prepare(tp1));
  EXPECT_TRUE(aliased->allocations.empty());
  EXPECT_FALSE(aliased->arena_slab);
  for (const PreparedShard& s : aliased->shards) EXPECT_TRUE(s.resident) << s.key;
}

TEST(LoaderShards, OnADeviceRequestsShareTheArenasBlockAndReuseWhatAnEvictedOneHeld) {
  LoaderOptions o = FixtureOptions();
  o.max_cached_requests = 1;
  auto space = std::make_unique<FakeDeviceSpace>();
  FakeDeviceSpace* device = space.get();
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l, Loader::Create(o, std::move(space)));
  SC_ASSERT_OK(l->Load());
  const int after_load = device->allocations;
  ShardRequestSpec rank0, rank1;
  rank0.layout_text = rank1.layout_text = kFixtureLayout;
  rank0.tp_size = rank1.tp_size = 2;
  rank1.tp_rank = 1;
  const void* block = nullptr;
  const char* first = nullptr;
  {
    SC_ASSERT_OK_AND_ASSIGN(auto a, l->Prepare(rank0));
    block = a->arena_slab.block_base();
    first = a->arena_slab.data();
  }
  SC_ASSERT_OK_AND_ASSIGN(auto b, l->Prepare(rank1));  // evicts rank 0's (the cap is 1)
  EXPECT_EQ(b->arena_slab.block_base(), block);
  EXPECT_EQ(b->arena_slab.data(), first);  // the evicted request's range, reused
  EXPECT_EQ(device->allocations, after_load + 1);  // one block for both
  EXPECT_GE(l->Snapshot().memory_held, uint64_t{64} << 20);  // the block's free space counts as held
  for (const PreparedShard& s : b->shards) EXPECT_EQ(Crc32c(ShardBytes(*l, s).data(), s.nbytes), s.crc32c) << s.key;
}

TEST(LoaderShards, OnADeviceLessRoomThanABlockGivesABlockOfWhatIsLeft) {
  uint64_t tensors = 0;
  {
    SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> probe, Loader::Create(FixtureOptions(), NewHostMemorySpace()));
    SC_ASSERT_OK(probe->Load());
    tensors = probe->Snapshot().memory_held;
  }
  LoaderOptions o = FixtureOptions();
  o.memory_budget = tensors + (16 << 20);  // room for the fixture's shards, not for a 64 MiB block
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l, Loader::Create(o, std::make_unique<FakeDeviceSpace>()));
  SC_ASSERT_OK(l->Load());
  ShardRequestSpec tp2;
  tp2.layout_text = kFixtureLayout;
  tp2.tp_size = 2;
  SC_ASSERT_OK_AND_ASSIGN(auto prepared, l->Prepare(tp2));
  ASSERT_TRUE(prepared->arena_slab);
  for (const PreparedShard& s : prepared->shards) {
    EXPECT_TRUE(s.resident) << s.key;
    EXPECT_EQ(Crc32c(ShardBytes(*l, s).data(), s.nbytes), s.crc32c) << s.key;
  }
  // The device's bytes (held, less the request's host bytes) within the budget: the tensors and a
  // block of what room was left, its free space included.
  EXPECT_LE(l->Snapshot().memory_held - Loader::HostBytes(*prepared), o.memory_budget);
  EXPECT_GT(l->Snapshot().memory_held, tensors + prepared->owned_bytes);
}

TEST(LoaderShards, OnADeviceCutShardsWithNoRoomInOnePieceAreRefusedSayingWhy) {
  auto space = std::make_unique<FakeDeviceSpace>();
  FakeDeviceSpace* device = space.get();
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l, Loader::Create(FixtureOptions(), std::move(space)));
  SC_ASSERT_OK(l->Load());
  device->refuse_from = 1;  // no block can be had any more
  ShardRequestSpec tp2;
  tp2.layout_text = kFixtureLayout;
  tp2.tp_size = 2;
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> refused = l->Prepare(tp2);
  ASSERT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "bytes of cut shards in one piece")) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "out of memory")) << refused.status();
  device->refuse_from = 0;
  SC_EXPECT_OK(l->Prepare(tp2).status());  // nothing was left behind
}

TEST(LoaderShards, CopyOutRefusesShardsOfOtherRanksAndReadsPastTheEnd) {
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l, Loader::Create(FixtureOptions(0, 2), NewHostMemorySpace()));
  SC_ASSERT_OK(l->Load());
  SC_ASSERT_OK_AND_ASSIGN(auto prepared, l->Prepare(ShardRequestSpec{}));
  char byte;
  for (const PreparedShard& s : prepared->shards) {
    absl::Status st = l->CopyOut(s, s.nbytes, 1, &byte);
    EXPECT_EQ(st.code(), s.owner == 0 ? absl::StatusCode::kOutOfRange : absl::StatusCode::kInvalidArgument) << st;
  }
}

TEST(LoaderCounters, TransfersAreCountedThroughTheObserver) {
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> l, Loader::Create(FixtureOptions(), NewHostMemorySpace()));
  {
    TransferGuard a(l->transfers()), b(l->transfers());
    EXPECT_EQ(l->Snapshot().clients_active, 2u);
  }
  EXPECT_EQ(l->Snapshot().clients_active, 0u);
  EXPECT_EQ(l->Snapshot().clients_served, 2u);
}

TEST(LoaderCache, APinnedRequestIsNotEvictedAndTheRefusalHasTheNumbers) {
  const auto [tensors, one] = Footprint();
  ASSERT_GT(one, 0u);
  std::unique_ptr<Loader> l = NewLoader(tensors + one + one / 2);  // room for one request
  SC_ASSERT_OK_AND_ASSIGN(auto a, l->Prepare(Request(1), "lease-a"));
  const std::string a_id = a->id;
  a.reset();
  absl::Status refused = l->Prepare(Request(2), "lease-b").status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("--memory-budget"), std::string::npos) << refused;
  EXPECT_NE(refused.message().find("1 pinned"), std::string::npos) << refused;
  EXPECT_NE(l->Find(a_id), nullptr);  // the client holding lease-a can still fetch it
  l->EndLease("lease-a");              // its transfer ended
  SC_EXPECT_OK(l->Prepare(Request(2), "lease-b").status());
  EXPECT_EQ(l->Find(a_id), nullptr);
}

TEST(LoaderCache, UnpinnedRequestsAreEvictedLeastRecentlyUsedFirst) {
  const auto [tensors, one] = Footprint();
  std::unique_ptr<Loader> l = NewLoader(tensors + 2 * one + one / 2);  // room for two
  SC_ASSERT_OK_AND_ASSIGN(auto a, l->Prepare(Request(1)));
  SC_ASSERT_OK_AND_ASSIGN(auto b, l->Prepare(Request(2)));
  const std::string a_id = a->id, b_id = b->id;
  a.reset();
  b.reset();
  EXPECT_NE(l->Find(a_id), nullptr);  // a is now the most recently used
  SC_EXPECT_OK(l->Prepare(Request(3)).status());
  EXPECT_NE(l->Find(a_id), nullptr);
  EXPECT_EQ(l->Find(b_id), nullptr);
  EXPECT_LE(l->Snapshot().memory_held, tensors + 2 * one + one / 2);
}

TEST(LoaderCache, ALeaseExpiresAfterItsDeadline) {
  const auto [tensors, one] = Footprint();
  std::unique_ptr<Loader> l = NewLoader(tensors + one + one / 2, 1024, std::chrono::milliseconds(100));
  SC_ASSERT_OK(l->Prepare(Request(1), "never-ended").status());
  EXPECT_EQ(l->Prepare(Request(2), "x").status().code(), absl::StatusCode::kResourceExhausted);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  SC_EXPECT_OK(l->Prepare(Request(2), "x").status());
}

TEST(LoaderCache, TheNumberOfCachedRequestsIsCapped) {
  std::unique_ptr<Loader> l = NewLoader(0, /*max_cached=*/3);
  for (int i = 0; i < 20; ++i) SC_ASSERT_OK(l->Prepare(Request(i)).status());
  EXPECT_EQ(l->Snapshot().cached_requests.size(), 3u);
  std::unique_ptr<Loader> pinned = NewLoader(0, /*max_cached=*/3);
  for (int i = 0; i < 3; ++i) SC_ASSERT_OK(pinned->Prepare(Request(i), "lease-" + std::to_string(i)).status());
  absl::Status s = pinned->Prepare(Request(3), "lease-3").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("--max-cached-requests 3"), std::string::npos) << s;
}

TEST(LoaderCache, NamesAreCountedAgainstTheBudget) {
  std::unique_ptr<Loader> l = NewLoader(0);
  const uint64_t tensors = l->Snapshot().memory_held;
  SC_ASSERT_OK_AND_ASSIGN(auto shortname, l->Prepare(Request(1)));
  const uint64_t with_short = l->Snapshot().memory_held;
  SC_ASSERT_OK_AND_ASSIGN(auto longname, l->Prepare(Request(2, std::string(1000, 'n'))));
  const uint64_t with_long = l->Snapshot().memory_held;
  EXPECT_GT(with_short, tensors);
  EXPECT_GE(with_long - with_short, longname->shards.size() * 1000);
  EXPECT_GE(Loader::HostBytes(*longname), longname->shards.size() * 1000);
  // And a budget that holds the shards but not those names refuses the request by its bytes.
  std::unique_ptr<Loader> tight = NewLoader(with_short + 1000);
  absl::Status s = tight->Prepare(Request(2, std::string(1000, 'n'))).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
}

TEST(LoaderCache, AnOversizedLeaseIdIsRefused) {
  std::unique_ptr<Loader> l = NewLoader(0);
  absl::Status s = l->Prepare(Request(1), std::string(1 << 20, 'x')).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("lease_id: 1048576 bytes"), std::string::npos) << s;
  SC_ASSERT_OK(l->Prepare(Request(1), std::string(64, 'x')).status());
}

TEST(LoaderCache, DrainingRefusesNewRequestsButKeepsPreparedOnes) {
  std::unique_ptr<Loader> l = NewLoader(0);
  SC_ASSERT_OK_AND_ASSIGN(auto a, l->Prepare(Request(1), "lease"));
  l->StartDraining();
  absl::Status s = l->Prepare(Request(2)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("shutting down"), std::string::npos) << s;
  EXPECT_NE(l->Find(a->id), nullptr);
}

}  // namespace
}  // namespace shardcast
