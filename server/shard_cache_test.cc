// ShardCache on fake requests (no checkpoint, no memory space) and a fake clock: LRU order, the
// budget and the cap on cached requests with their refusal texts, pins (leases and readers)
// protecting from eviction, lease expiry, the cap on leases, and buffers freed on eviction.
#include "server/shard_cache.h"

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

using std::chrono::milliseconds;

constexpr int kRank = 3;
constexpr uint64_t kTensorBytes = 500;
constexpr uint64_t kShardBytes = 1000;

int freed_buffers = 0;
char fake_memory[16];
void CountFree(void*) { ++freed_buffers; }

// A request of one shard owned by `owner`, holding `owned_bytes` in one (fake) buffer.
std::shared_ptr<PreparedRequest> FakeRequest(const std::string& id, uint64_t owned_bytes = kShardBytes,
                                             int owner = kRank) {
  auto r = std::make_shared<PreparedRequest>();
  r->id = id;
  r->description = "request " + id;
  PreparedShard shard;
  shard.name = "shard of " + id;
  shard.owner = owner;
  shard.nbytes = owned_bytes;
  r->shards.push_back(shard);
  r->owned_bytes = owned_bytes;
  if (owned_bytes > 0) r->allocations.emplace_back(fake_memory, owned_bytes, &CountFree);
  return r;
}

// What one fake request of kShardBytes takes in the cache (its own buffer's free not counted).
uint64_t OneRequest() {
  static const uint64_t bytes = [] {
    const int freed = freed_buffers;
    const uint64_t n = kShardBytes + ShardCache::HostBytes(*FakeRequest("x"));
    freed_buffers = freed;
    return n;
  }();
  return bytes;
}

class ShardCacheTest : public ::testing::Test {
 protected:
  // A cache with room for `requests` fake requests beyond the tensors (0: no budget).
  std::unique_ptr<ShardCache> NewCache(int requests, size_t max_cached = 1024, size_t max_leases = 4096) {
    ShardCacheOptions o;
    o.rank = kRank;
    o.memory_budget = requests ? kTensorBytes + requests * OneRequest() + OneRequest() / 2 : 0;
    o.max_cached_requests = max_cached;
    o.max_leases = max_leases;
    o.lease_ttl = milliseconds(100);
    auto cache = std::make_unique<ShardCache>(o, [this] { return now_; });
    cache->SetTensorBytes(kTensorBytes);
    return cache;
  }
  // Admits a fake request and drops the caller's reference (as Loader::Prepare's caller does).
  absl::Status Admit(ShardCache& cache, const std::string& id, const std::string& lease = "") {
    return cache.Admit(FakeRequest(id), lease).status();
  }
  void SetUp() override { freed_buffers = 0; }

  std::chrono::steady_clock::time_point now_{};
};

TEST_F(ShardCacheTest, EvictsTheLeastRecentlyUsedFirst) {
  auto cache = NewCache(2);
  SC_ASSERT_OK(Admit(*cache, "a"));
  SC_ASSERT_OK(Admit(*cache, "b"));
  EXPECT_NE(cache->Find("a"), nullptr);  // a is now the most recently used
  SC_ASSERT_OK(Admit(*cache, "c"));
  EXPECT_NE(cache->Find("a"), nullptr);
  EXPECT_EQ(cache->Find("b"), nullptr);
  EXPECT_EQ(cache->Descriptions(), (std::vector<std::string>{"request a", "request c"}));
  EXPECT_EQ(cache->held_bytes(), kTensorBytes + 2 * OneRequest());
  EXPECT_EQ(freed_buffers, 1);  // b's buffer went with it
}

TEST_F(ShardCacheTest, StatsCountAdmissionsEvictionsAndWhatIsHeld) {
  auto cache = NewCache(2);
  SC_ASSERT_OK(Admit(*cache, "a"));
  SC_ASSERT_OK(Admit(*cache, "b"));
  SC_ASSERT_OK(Admit(*cache, "a"));  // already cached: not admitted again
  ShardCacheStats s = cache->stats();
  EXPECT_EQ(s.admitted, 2u);
  EXPECT_EQ(s.evicted, 0u);
  EXPECT_EQ(s.cached, 2u);
  SC_ASSERT_OK(Admit(*cache, "c"));  // evicts one
  SC_ASSERT_OK(Admit(*cache, "d"));  // evicts another
  s = cache->stats();
  EXPECT_EQ(s.admitted, 4u);
  EXPECT_EQ(s.evicted, 2u);
  EXPECT_EQ(s.cached, 2u);
  auto full = NewCache(0, /*max_cached=*/0);
  EXPECT_EQ(Admit(*full, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(full->stats().admitted, 0u);  // refused: not counted
}

TEST_F(ShardCacheTest, ABudgetRefusalNamesTheNumbers) {
  auto cache = NewCache(1);
  SC_ASSERT_OK(Admit(*cache, "a", "lease-a"));
  const uint64_t budget = kTensorBytes + OneRequest() + OneRequest() / 2;
  absl::Status s = cache->Reserve(kShardBytes);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), absl::StrCat("rank 3: the request needs 1000 bytes; tensors (500) and cached requests (",
                                      OneRequest(), " bytes in 1 requests, 1 pinned by in-flight clients) leave ",
                                      budget - kTensorBytes - OneRequest(), " of --memory-budget ", budget));
  EXPECT_NE(cache->Find("a"), nullptr);
}

TEST_F(ShardCacheTest, ARefusedAdmissionFreesTheRequest) {
  auto cache = NewCache(1);
  SC_ASSERT_OK(Admit(*cache, "a", "lease-a"));
  EXPECT_EQ(Admit(*cache, "b").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(freed_buffers, 1);
  EXPECT_EQ(cache->Find("b"), nullptr);
}

TEST_F(ShardCacheTest, LeasesAndReadersProtectFromEviction) {
  auto cache = NewCache(1);
  SC_ASSERT_OK(Admit(*cache, "a", "lease-a"));
  EXPECT_FALSE(cache->Reserve(kShardBytes).ok());
  cache->EndLease("lease-a");
  {
    std::shared_ptr<const PreparedRequest> reading = cache->Find("a");  // a transfer in progress
    absl::Status s = cache->Reserve(kShardBytes);
    EXPECT_NE(s.message().find("1 pinned by in-flight clients"), std::string::npos) << s;
  }
  SC_EXPECT_OK(cache->Reserve(kShardBytes));  // nobody holds it now: evicted
  EXPECT_EQ(cache->Find("a"), nullptr);
}

TEST_F(ShardCacheTest, ALeaseExpiresAtItsDeadline) {
  auto cache = NewCache(1);
  SC_ASSERT_OK(Admit(*cache, "a", "never-ended"));
  now_ += milliseconds(99);
  EXPECT_FALSE(cache->Reserve(kShardBytes).ok());
  EXPECT_EQ(cache->lease_count(), 1u);
  now_ += milliseconds(1);
  SC_EXPECT_OK(cache->Reserve(kShardBytes));
  EXPECT_EQ(cache->lease_count(), 0u);
}

TEST_F(ShardCacheTest, LiveLeasesLeaveOutExpiredOnesNotYetDropped) {
  auto cache = NewCache(1);
  SC_ASSERT_OK(Admit(*cache, "a", "lease-1"));
  EXPECT_EQ(cache->live_lease_count(), 1u);
  now_ += milliseconds(100);
  EXPECT_EQ(cache->lease_count(), 1u);  // not dropped yet
  EXPECT_EQ(cache->live_lease_count(), 0u);
}

TEST_F(ShardCacheTest, PinningAgainUnderTheSameLeaseExtendsIt) {
  auto cache = NewCache(1);
  SC_ASSERT_OK(Admit(*cache, "a", "lease"));
  now_ += milliseconds(60);
  EXPECT_NE(cache->FindAndPin("a", "lease"), nullptr);
  now_ += milliseconds(60);  // past the first deadline, not the second
  EXPECT_FALSE(cache->Reserve(kShardBytes).ok());
  cache->EndLease("lease");  // one pin per lease: ending it once unpins
  SC_EXPECT_OK(cache->Reserve(kShardBytes));
}

TEST_F(ShardCacheTest, TheNumberOfLeasesIsCapped) {
  auto cache = NewCache(0, 1024, /*max_leases=*/2);
  SC_ASSERT_OK(Admit(*cache, "a", "l1"));
  SC_ASSERT_OK(Admit(*cache, "b", "l2"));
  absl::Status s = cache->CheckLeaseRoom("l3");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "rank 3: 2 manifests are awaiting their transfers (the limit); retry later");
  SC_EXPECT_OK(cache->CheckLeaseRoom("l1"));  // a lease already held
  SC_EXPECT_OK(cache->CheckLeaseRoom(""));    // no lease at all
  cache->EndLease("l1");
  SC_EXPECT_OK(cache->CheckLeaseRoom("l3"));
  now_ += milliseconds(100);  // l2 expires too
  SC_EXPECT_OK(cache->CheckLeaseRoom("l4"));
  EXPECT_EQ(cache->lease_count(), 0u);
}

TEST_F(ShardCacheTest, TheNumberOfCachedRequestsIsCapped) {
  auto cache = NewCache(0, /*max_cached=*/2);
  for (const char* id : {"a", "b", "c", "d"}) SC_ASSERT_OK(Admit(*cache, id));
  EXPECT_EQ(cache->Descriptions(), (std::vector<std::string>{"request d", "request c"}));
  auto pinned = NewCache(0, /*max_cached=*/2);
  SC_ASSERT_OK(Admit(*pinned, "a", "l1"));
  SC_ASSERT_OK(Admit(*pinned, "b", "l2"));
  absl::Status s = Admit(*pinned, "c", "l3");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "rank 3: 2 requests are cached (the limit, --max-cached-requests 2) and 2 of them are "
                         "pinned by in-flight clients; retry later");
}

TEST_F(ShardCacheTest, EndingAnUnknownLeaseIsANoOp) {
  auto cache = NewCache(1);
  SC_ASSERT_OK(Admit(*cache, "a", "lease-a"));
  cache->EndLease("no-such-lease");
  cache->EndLease("");
  EXPECT_EQ(cache->lease_count(), 1u);
  EXPECT_FALSE(cache->Reserve(kShardBytes).ok());  // still pinned
}

TEST_F(ShardCacheTest, ALeaseOnARankWithoutShardsOfTheRequestPinsNothing) {
  auto cache = NewCache(1);
  ASSERT_TRUE(cache->Admit(FakeRequest("a", kShardBytes, /*owner=*/kRank + 1), "lease").ok());
  EXPECT_EQ(cache->lease_count(), 0u);
  SC_EXPECT_OK(cache->Reserve(kShardBytes));
}

TEST_F(ShardCacheTest, AnAliasingRequestCostsOnlyItsHostBytes) {
  auto cache = NewCache(0);
  std::shared_ptr<PreparedRequest> alias = FakeRequest("a", /*owned_bytes=*/0);
  const uint64_t host = ShardCache::HostBytes(*alias);
  SC_ASSERT_OK(cache->Admit(alias, "").status());
  EXPECT_EQ(cache->held_bytes(), kTensorBytes + host);
}

TEST_F(ShardCacheTest, AdmittingACachedIdKeepsTheFirst) {
  auto cache = NewCache(0);
  SC_ASSERT_OK_AND_ASSIGN(auto first, cache->Admit(FakeRequest("a"), ""));
  SC_ASSERT_OK_AND_ASSIGN(auto second, cache->Admit(FakeRequest("a"), ""));
  EXPECT_EQ(first, second);
  EXPECT_EQ(freed_buffers, 1);  // the duplicate was dropped
  EXPECT_EQ(cache->held_bytes(), kTensorBytes + OneRequest());
}

TEST_F(ShardCacheTest, HostBytesGrowWithNames) {
  std::shared_ptr<PreparedRequest> short_names = FakeRequest("a");
  std::shared_ptr<PreparedRequest> long_names = FakeRequest("a");
  long_names->shards[0].name = std::string(1000, 'n');
  EXPECT_GE(ShardCache::HostBytes(*long_names), ShardCache::HostBytes(*short_names) + 1000);
}

}  // namespace
}  // namespace shardcast
