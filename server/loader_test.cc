// The loader's cache: budget (shard bytes plus host bytes), the cap on cached requests, leases
// that pin a request from its manifest to its transfer (or their deadline), and draining. On the
// shared vit_tp2 fixture, one rank, host memory; requests cast to fp32 so that every shard is cut
// (owned bytes), each made distinct by a rename.
#include "server/loader.h"

#include <chrono>
#include <thread>

#include "checkpoint/test_fixtures.h"
#include "common/status_testutil.h"
#include "gtest/gtest.h"

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
