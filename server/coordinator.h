// Rank 0's control-plane core: watches every loader rank (GetRankState over gRPC, with a
// deadline), derives the service state (loading / ready / failed, sticky once failed, with the
// reason; stopping once draining), and answers manifests by preparing the request on every rank
// under a new lease and merging the shards (owner rank, CRC32C) in plan order. Calls to the ranks
// use gRPC's callback API: no thread per rank per call.
#ifndef SHARDCAST_SERVER_COORDINATOR_H_
#define SHARDCAST_SERVER_COORDINATOR_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/shardcast/v1/shardcast.grpc.pb.h"
#include "server/loader.h"
#include "server/rank_state.h"
#include "transport/grpc_tls.h"

namespace shardcast {

// The client contexts of manifest calls in flight, so that a rank turning failed cuts them
// short (TryCancel) instead of letting each wait out its deadline on a frozen rank.
class InflightCalls {
 public:
  void Add(grpc::ClientContext* ctx);
  void Remove(grpc::ClientContext* ctx);
  // Cancels every call in flight and every one added later.
  void CancelAll();

 private:
  std::mutex mu_;
  std::set<grpc::ClientContext*> calls_;
  bool cancelled_ = false;
};

struct CoordinatorOptions {
  std::vector<std::string> rank_addresses;  // index = rank
  std::string token;
  std::chrono::milliseconds deadline{60000};
  std::chrono::milliseconds poll_interval{250};
  // While loading, the next poll comes sooner when a rank expects to finish sooner (PollDelay):
  // never sooner than this.
  std::chrono::milliseconds min_poll_interval{10};
  std::string checkpoint;
  int nccl_version = 0;
  TlsConfig tls;                            // for the connections to the ranks
  // How to reach a rank by its address; unset: NewChannel(address, tls). Tests hand in-process
  // channels here.
  std::function<std::shared_ptr<grpc::Channel>(const std::string& address)> connect;
  // Called whenever the state changes.
  std::function<void(RankState)> on_state;
};

// How long the coordinator waits before its next poll: `interval`, or, while some rank is loading
// and expects to finish sooner (half its ETA, never under `floor`), that. So "ready" follows the
// last rank's load within milliseconds rather than up to a poll interval later (pure).
std::chrono::milliseconds PollDelay(const std::vector<v1::RankState>& ranks, std::chrono::milliseconds interval,
                                    std::chrono::milliseconds floor);

class Coordinator {
 public:
  Coordinator(CoordinatorOptions options, Loader* local);
  ~Coordinator();
  void Start();
  void Stop();
  // Polls now (e.g. rank 0's own load just finished) instead of at the next interval.
  void Wake();

  // UNAVAILABLE when failed (with the reason), FAILED_PRECONDITION while loading; the request's
  // own errors as the ranks report them.
  absl::StatusOr<v1::Manifest> Manifest(const v1::ShardRequest& request);
  v1::ServiceStatus Status();
  RankState state();
  // Blocks until ready or failed or the timeout passes; returns the state.
  RankState WaitUntilSettled(std::chrono::milliseconds timeout);
  // State kStopping (sticky): new manifests are refused with UNAVAILABLE.
  void StartDraining();
  // Whether every rank is idle now: no manifest in flight here, and a poll round that started
  // after the last manifest finished saw no client active and no lease pinned on any rank.
  bool Idle();
  // Manifests answered successfully since the start.
  uint64_t manifests_served() const { return manifests_served_.load(); }

 private:
  void Poll();
  void SetState(RankState state, const std::string& reason);
  void EndLease(const std::string& lease);
  // OK while ready; the refusal of a manifest otherwise.
  absl::Status CheckServing();
  absl::StatusOr<v1::Manifest> ManifestOnce(const v1::ShardRequest& request);
  // Prepare on every rank under `prepare`'s id and lease, then the merged manifest. The caller
  // ends the lease on an error.
  absl::StatusOr<v1::Manifest> PrepareEverywhere(const ShardRequestSpec& spec, const v1::PrepareRequest& prepare);
  absl::Status PrepareError(size_t rank, const absl::Status& status);
  // Rank 0's plan of the request (order, owners) filled with its own shards' infos and the other
  // ranks' (`remote`, by name; moved out), under `prepare`'s request id and lease.
  absl::StatusOr<v1::Manifest> MergeManifest(const PreparedRequest& plan,
                                             std::unordered_map<std::string_view, v1::ShardInfo*>* remote,
                                             const v1::PrepareRequest& prepare) const;

  CoordinatorOptions options_;
  Loader* local_;
  std::vector<std::unique_ptr<v1::LoaderRank::Stub>> stubs_;
  std::mutex mu_;
  std::condition_variable cv_;
  RankState state_ = RankState::kLoading;
  std::string reason_;
  std::vector<v1::RankState> ranks_;
  std::vector<std::chrono::steady_clock::time_point> last_ok_;
  std::mutex retry_mu_;                         // serialises Manifest's retry under memory pressure
  InflightCalls manifest_calls_;                // Prepare calls of manifests in flight
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::atomic<bool> stop_{false};
  bool wake_ = false;  // under mu_: Wake() was called
  std::atomic<uint32_t> manifests_in_flight_{0};
  std::atomic<uint64_t> manifests_served_{0};
  // Poll rounds: how many started, which one ranks_ holds (under mu_), and the number of rounds
  // started when the last manifest finished (Idle() needs a round that started after it).
  std::atomic<uint64_t> poll_rounds_started_{0};
  uint64_t polled_round_ = 0;
  std::atomic<uint64_t> last_manifest_round_{0};
  std::thread thread_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_COORDINATOR_H_
