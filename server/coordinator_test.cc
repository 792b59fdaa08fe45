// Rank 0's Coordinator against two in-process loader ranks (Loader over host memory on the shared
// vit_tp2 fixture, each behind its LoaderService in its own gRPC server), reached through
// in-process channels: the static list of rank addresses stands in for the MPI bootstrap. A thin
// forwarding service in front of each rank records Prepare / EndLease calls and can stop
// answering, as a frozen or dead rank would.
#include "server/coordinator.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "checkpoint/test_fixtures.h"
#include "common/status_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/request_convert.h"
#include "server/loader.h"
#include "server/loader_service.h"
#include "server/proto_convert.h"

namespace shardcast {
namespace {

using ::testing::HasSubstr;

// One loader rank: its core, its LoaderService, and in front of it a service that forwards the
// calls rank 0 makes, records the leases it sees, and answers UNAVAILABLE once stopped.
class FakeRank final : public v1::LoaderRank::Service {
 public:
  FakeRank(int rank, int world_size, const std::string& default_layout) {
    LoaderOptions o;
    o.checkpoint = testing::FixturePath("dcp-torch2.11/vit_tp2");
    o.rank = rank;
    o.world_size = world_size;
    o.layout = default_layout;
    o.read_threads = 2;
    absl::StatusOr<std::unique_ptr<Loader>> loader = Loader::Create(o, NewHostMemorySpace());
    EXPECT_TRUE(loader.ok()) << loader.status();
    loader_ = *std::move(loader);
    EXPECT_TRUE(loader_->Load().ok());
    service_ = std::make_unique<LoaderService>(loader_.get(), "", "localhost", DeviceSessions{});
    grpc::ServerBuilder builder;
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeRank() override { server_->Shutdown(); }

  std::shared_ptr<grpc::Channel> Channel() { return server_->InProcessChannel(grpc::ChannelArguments()); }
  Loader& loader() { return *loader_; }
  void Stop() { stopped_ = true; }
  void Resume() { stopped_ = false; }
  std::vector<std::string> prepared_leases() {
    std::lock_guard<std::mutex> lock(mu_);
    return prepared_leases_;
  }
  std::vector<std::string> ended_leases() {
    std::lock_guard<std::mutex> lock(mu_);
    return ended_leases_;
  }

  grpc::Status Prepare(grpc::ServerContext* ctx, const v1::PrepareRequest* req, v1::PrepareReply* reply) override {
    if (stopped_) return Stopped();
    {
      std::lock_guard<std::mutex> lock(mu_);
      prepared_leases_.push_back(req->lease_id());
    }
    return service_->Prepare(ctx, req, reply);
  }
  grpc::Status GetRankState(grpc::ServerContext* ctx, const v1::StatusRequest* req, v1::RankState* reply) override {
    if (stopped_) return Stopped();
    return service_->GetRankState(ctx, req, reply);
  }
  grpc::Status EndLease(grpc::ServerContext* ctx, const v1::EndLeaseRequest* req, v1::EndLeaseReply* reply) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ended_leases_.push_back(req->lease_id());
    }
    return service_->EndLease(ctx, req, reply);
  }

 private:
  static grpc::Status Stopped() { return grpc::Status(grpc::StatusCode::UNAVAILABLE, "rank stopped (test)"); }

  std::unique_ptr<Loader> loader_;
  std::unique_ptr<LoaderService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<bool> stopped_{false};
  std::mutex mu_;
  std::vector<std::string> prepared_leases_, ended_leases_;
};

// Two loader ranks and rank 0's Coordinator over them; rank 1's default layout may differ.
class CoordinatorTest : public ::testing::Test {
 protected:
  void StartService(const std::string& rank1_layout = "megatron") {
    ranks_.push_back(std::make_unique<FakeRank>(0, 2, "megatron"));
    ranks_.push_back(std::make_unique<FakeRank>(1, 2, rank1_layout));
    CoordinatorOptions o;
    o.rank_addresses = {"rank0.test:1", "rank1.test:1"};  // the fake bootstrap's list
    o.deadline = std::chrono::milliseconds(1000);         // also the grace before a silent rank fails
    o.poll_interval = std::chrono::milliseconds(50);
    std::map<std::string, std::shared_ptr<grpc::Channel>> channels = {{o.rank_addresses[0], ranks_[0]->Channel()},
                                                                      {o.rank_addresses[1], ranks_[1]->Channel()}};
    o.connect = [channels](const std::string& address) { return channels.at(address); };
    coordinator_ = std::make_unique<Coordinator>(o, &ranks_[0]->loader());
    coordinator_->Start();
    ASSERT_EQ(coordinator_->WaitUntilSettled(std::chrono::seconds(30)), RankState::kReady);
  }
  void TearDown() override {
    if (coordinator_) coordinator_->Stop();
  }

  static v1::ShardRequest Tp2Rank(int rank) {
    ShardRequestSpec spec;
    spec.tp_size = 2;
    spec.tp_rank = rank;
    return ShardRequestToProto(spec);
  }

  std::vector<std::unique_ptr<FakeRank>> ranks_;
  std::unique_ptr<Coordinator> coordinator_;
};

TEST_F(CoordinatorTest, ManifestMergesBothRanksInPlanOrderWithOwnersAndCrcs) {
  StartService();
  SC_ASSERT_OK_AND_ASSIGN(const v1::Manifest m, coordinator_->Manifest(Tp2Rank(1)));
  // The reference: one rank holding every tensor plans and cuts the same request alone.
  LoaderOptions o;
  o.checkpoint = testing::FixturePath("dcp-torch2.11/vit_tp2");
  o.read_threads = 2;
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<Loader> alone, Loader::Create(o, NewHostMemorySpace()));
  SC_ASSERT_OK(alone->Load());
  SC_ASSERT_OK_AND_ASSIGN(auto expected, alone->Prepare(ShardRequestFromProto(Tp2Rank(1))));
  // The owners: rank 0's own plan of the request (it owns some shards, so holds it pinned).
  std::shared_ptr<const PreparedRequest> rank0_plan = ranks_[0]->loader().Find(m.request_id());
  ASSERT_NE(rank0_plan, nullptr);
  ASSERT_EQ(m.shards_size(), static_cast<int>(expected->shards.size()));
  ASSERT_GT(m.shards_size(), 1);
  std::vector<int> shards_by_owner(2, 0);
  uint64_t total = 0;
  for (int i = 0; i < m.shards_size(); ++i) {
    const v1::ShardInfo& got = m.shards(i);
    EXPECT_EQ(got.name(), expected->shards[i].name) << "plan order differs at " << i;
    EXPECT_EQ(got.crc32c(), expected->shards[i].crc32c) << got.name();
    EXPECT_EQ(got.nbytes(), expected->shards[i].nbytes) << got.name();
    ASSERT_LT(got.owner_rank(), 2u);
    EXPECT_EQ(static_cast<int>(got.owner_rank()), rank0_plan->shards[i].owner) << got.name();
    ++shards_by_owner[got.owner_rank()];
    total += got.nbytes();
  }
  EXPECT_GT(shards_by_owner[0], 0);  // both ranks contributed
  EXPECT_GT(shards_by_owner[1], 0);
  EXPECT_EQ(m.total_bytes(), total);
  EXPECT_EQ(m.request_id(), ranks_[1]->loader().RequestId(ShardRequestFromProto(Tp2Rank(1))));
  EXPECT_FALSE(m.lease_id().empty());
  ASSERT_EQ(m.endpoints_size(), 2);
  EXPECT_EQ(m.endpoints(1).address(), "rank1.test:1");
  // Each rank holds what the manifest says it owns.
  for (const v1::ShardInfo& s : m.shards()) {
    std::shared_ptr<const PreparedRequest> held = ranks_[s.owner_rank()]->loader().Find(m.request_id());
    ASSERT_NE(held, nullptr);
  }
}

TEST_F(CoordinatorTest, AClientHoldingTheManifestGetsOnlyANewLease) {
  StartService();
  SC_ASSERT_OK_AND_ASSIGN(const v1::Manifest full, coordinator_->Manifest(Tp2Rank(1)));
  ASSERT_EQ(full.digest().size(), 32u);
  EXPECT_FALSE(full.unchanged());
  EXPECT_EQ(full.digest(), ManifestDigest(full));
  v1::ShardRequest again = Tp2Rank(1);
  again.set_known_manifest(full.digest());
  SC_ASSERT_OK_AND_ASSIGN(const v1::Manifest lease_only, coordinator_->Manifest(again));
  EXPECT_TRUE(lease_only.unchanged());
  EXPECT_EQ(lease_only.digest(), full.digest());
  EXPECT_EQ(lease_only.request_id(), full.request_id());
  EXPECT_EQ(lease_only.shards_size(), 0);
  EXPECT_EQ(lease_only.endpoints_size(), 0);
  EXPECT_FALSE(lease_only.lease_id().empty());
  EXPECT_NE(lease_only.lease_id(), full.lease_id());  // pinned anew on every rank
  // Another rank's request, or a stale digest: the whole manifest, with its own digest.
  v1::ShardRequest other = Tp2Rank(0);
  other.set_known_manifest(full.digest());
  SC_ASSERT_OK_AND_ASSIGN(const v1::Manifest other_m, coordinator_->Manifest(other));
  EXPECT_FALSE(other_m.unchanged());
  EXPECT_GT(other_m.shards_size(), 0);
  EXPECT_NE(other_m.digest(), full.digest());
  // A digest is a digest: a long one is refused before any rank is asked.
  v1::ShardRequest long_known = Tp2Rank(1);
  long_known.set_known_manifest(std::string(65, 'a'));
  EXPECT_TRUE(absl::IsInvalidArgument(coordinator_->Manifest(long_known).status()));
}

TEST(ManifestDigestTest, TheLeaseDoesNotCountAndAnythingElseDoes) {
  v1::Manifest m;
  m.set_request_id("r");
  m.add_shards()->set_name("w");
  m.set_lease_id("a");
  const std::string d = ManifestDigest(m);
  m.set_lease_id("b");
  m.set_lease_seconds(5);
  EXPECT_EQ(ManifestDigest(m), d);
  EXPECT_EQ(m.lease_id(), "b");  // left as it was
  m.mutable_shards(0)->set_crc32c(1);
  EXPECT_NE(ManifestDigest(m), d);
}

// Waits (polls every 50 ms) until `pred` holds; false after 10 s.
template <typename Pred>
bool Eventually(Pred pred) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TEST_F(CoordinatorTest, StatusSumsTheRanksProgressAtHundredPercent) {
  StartService();
  const v1::ServiceStatus st = coordinator_->Status();
  uint64_t selected = 0;
  for (const v1::RankState& r : st.ranks()) {
    EXPECT_EQ(r.payload_bytes_done(), r.bytes_selected());
    EXPECT_DOUBLE_EQ(r.percent(), 100);
    selected += r.bytes_selected();
  }
  EXPECT_GT(selected, 0u);
  EXPECT_EQ(st.payload_bytes_total(), selected);
  EXPECT_EQ(st.payload_bytes_done(), selected);
  EXPECT_DOUBLE_EQ(st.percent(), 100);
  EXPECT_EQ(st.eta_seconds(), 0);
}

TEST_F(CoordinatorTest, AManifestsLeaseKeepsTheServiceBusyUntilItEnds) {
  StartService();
  EXPECT_EQ(coordinator_->manifests_served(), 0u);
  ASSERT_TRUE(Eventually([&] { return coordinator_->Idle(); }));
  SC_ASSERT_OK_AND_ASSIGN(const v1::Manifest m, coordinator_->Manifest(Tp2Rank(0)));
  EXPECT_EQ(coordinator_->manifests_served(), 1u);
  EXPECT_EQ(coordinator_->Status().manifests_served(), 1u);
  // The next polls see the pinned leases: not idle while the client has not fetched.
  ASSERT_TRUE(Eventually([&] { return !coordinator_->Idle(); }));
  for (auto& rank : ranks_) rank->loader().EndLease(m.lease_id());  // what the end of each transfer does
  EXPECT_TRUE(Eventually([&] { return coordinator_->Idle(); }));
}

TEST_F(CoordinatorTest, RawPrepareWithAWrongRequestIdIsRefusedNamingBothIds) {
  StartService();
  auto stub = v1::LoaderRank::NewStub(ranks_[1]->Channel());
  v1::PrepareRequest req;
  *req.mutable_request() = Tp2Rank(0);
  req.set_request_id("0123456789abcdef01234567");
  grpc::ClientContext ctx;
  v1::PrepareReply reply;
  const grpc::Status s = stub->Prepare(&ctx, req, &reply);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("0123456789abcdef01234567"));
  EXPECT_THAT(s.error_message(), HasSubstr(ranks_[1]->loader().RequestId(ShardRequestFromProto(Tp2Rank(0)))));
  EXPECT_EQ(ranks_[1]->loader().Find(req.request_id()), nullptr);  // nothing prepared under either id
  EXPECT_EQ(ranks_[1]->loader().Find(ranks_[1]->loader().RequestId(ShardRequestFromProto(Tp2Rank(0)))), nullptr);

  grpc::ClientContext ctx2;
  req.clear_request_id();
  EXPECT_EQ(stub->Prepare(&ctx2, req, &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CoordinatorTest, RanksThatComputeAnotherIdRefuseAndTheLeaseIsEndedEverywhere) {
  StartService(/*rank1_layout=*/"replicate");  // rank 1's default differs from rank 0's
  absl::StatusOr<v1::Manifest> m = coordinator_->Manifest(Tp2Rank(0));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition) << m.status();
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("request id mismatch"));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("loader rank 1"));
  // Rank 0 prepared through its own loader (no call to its service), rank 1 was asked under the
  // same lease and refused; the lease is ended on every rank, and rank 0 holds no pin.
  EXPECT_TRUE(ranks_[0]->prepared_leases().empty());
  const std::vector<std::string> prepared = ranks_[1]->prepared_leases();
  ASSERT_EQ(prepared.size(), 1u);
  ASSERT_FALSE(prepared[0].empty());
  EXPECT_EQ(ranks_[0]->ended_leases(), prepared);
  EXPECT_EQ(ranks_[1]->ended_leases(), prepared);
  EXPECT_EQ(ranks_[0]->loader().Snapshot().leases_pinned, 0u);
}

TEST_F(CoordinatorTest, ARankThatStopsAnsweringFailsTheServiceAndManifestsNameIt) {
  StartService();
  ranks_[1]->Stop();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (coordinator_->state() != RankState::kFailed && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(coordinator_->state(), RankState::kFailed);
  const v1::ServiceStatus st = coordinator_->Status();
  EXPECT_THAT(st.reason(), HasSubstr("loader rank 1"));
  EXPECT_THAT(st.reason(), HasSubstr("stopped answering"));
  ASSERT_EQ(st.ranks_size(), 2);
  EXPECT_EQ(st.ranks(1).state(), "failed");
  EXPECT_THAT(st.ranks(1).last_error(), HasSubstr("rank stopped (test)"));
  EXPECT_EQ(st.ranks(0).state(), "ready");
  absl::StatusOr<v1::Manifest> m = coordinator_->Manifest(Tp2Rank(0));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("loader rank 1"));
  ranks_[1]->Resume();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // several polls
  // Failed is sticky: the rank answering again does not bring the service back.
  EXPECT_EQ(coordinator_->state(), RankState::kFailed);
}

TEST_F(CoordinatorTest, AnInvalidRequestIsRefusedBeforeAnyRankIsAsked) {
  StartService();
  v1::ShardRequest bad = Tp2Rank(0);
  bad.set_tp_rank(7);
  absl::StatusOr<v1::Manifest> m = coordinator_->Manifest(bad);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("tp_rank 7"));
  EXPECT_TRUE(ranks_[0]->prepared_leases().empty());
  EXPECT_TRUE(ranks_[1]->prepared_leases().empty());
}

}  // namespace
}  // namespace shardcast

namespace shardcast {
namespace {

v1::RankState Rank(RankState state, double eta_seconds) {
  v1::RankState r;
  r.set_state(std::string(RankStateName(state)));
  r.set_eta_seconds(eta_seconds);
  return r;
}

TEST(PollDelayTest, PollsSoonerAsTheFirstLoadingRankNearsItsEnd) {
  using std::chrono::milliseconds;
  const milliseconds interval(250), floor(10);
  // Nobody loading, or no ETA yet: the interval.
  EXPECT_EQ(PollDelay({Rank(RankState::kReady, 0)}, interval, floor), interval);
  EXPECT_EQ(PollDelay({Rank(RankState::kLoading, -1)}, interval, floor), interval);
  // Half the smallest ETA of a loading rank, capped by the interval, never under the floor.
  EXPECT_EQ(PollDelay({Rank(RankState::kLoading, 0.2), Rank(RankState::kLoading, 0.1)}, interval, floor),
            milliseconds(50));
  EXPECT_EQ(PollDelay({Rank(RankState::kLoading, 30)}, interval, floor), interval);
  EXPECT_EQ(PollDelay({Rank(RankState::kLoading, 0.001)}, interval, floor), floor);
  EXPECT_EQ(PollDelay({Rank(RankState::kLoading, 0)}, interval, floor), floor);
  // A failed or ready rank's ETA does not count.
  EXPECT_EQ(PollDelay({Rank(RankState::kFailed, 0.01), Rank(RankState::kReady, 0)}, interval, floor), interval);
}

}  // namespace
}  // namespace shardcast
