#include "server/coordinator.h"

#include <sys/random.h>

#include <map>
#include <random>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "server/grpc_util.h"
#include "server/load_progress.h"
#include "server/proto_convert.h"
#include "common/shard_request.h"
#include "common/status_macros.h"
#include "proto/request_convert.h"

namespace shardcast {
namespace {

constexpr size_t kMaxKnownManifestBytes = 64;  // ShardRequest.known_manifest

// Counts completions of asynchronous calls and lets one thread wait for all of them. (Not
// absl::BlockingCounter: its absl::Mutex lives in Debian's uninstrumented Abseil, where TSan
// cannot see the hand-over of each call's reply; std::mutex it sees.)
class Latch {
 public:
  explicit Latch(size_t n) : left_(n) {}
  void CountDown() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--left_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return left_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t left_;
};

// One outgoing call to a rank: its context, reply and final status (kept alive until done).
template <typename Reply>
struct RankCall {
  grpc::ClientContext ctx;
  Reply reply;
  grpc::Status status;
};

// Calls `start(rank, call, done)` for every rank at once (gRPC's callback API: no thread per call)
// and waits until every call has finished; every call carries a deadline, so this returns.
template <typename Reply>
std::unique_ptr<RankCall<Reply>[]> CallEveryRank(
    size_t ranks, const std::string& token, std::chrono::milliseconds deadline,
    const std::function<void(size_t, RankCall<Reply>*, std::function<void(grpc::Status)>)>& start,
    InflightCalls* inflight = nullptr, const std::function<void()>& meanwhile = nullptr) {
  std::unique_ptr<RankCall<Reply>[]> calls(new RankCall<Reply>[ranks]);
  Latch latch(ranks);
  for (size_t r = 0; r < ranks; ++r) {
    RankCall<Reply>* call = &calls[r];
    PrepareClientContext(&call->ctx, token, deadline);
    if (inflight != nullptr) inflight->Add(&call->ctx);
    start(r, call, [call, &latch](grpc::Status s) {
      call->status = std::move(s);
      latch.CountDown();
    });
  }
  if (meanwhile) meanwhile();
  latch.Wait();
  if (inflight != nullptr) {
    for (size_t r = 0; r < ranks; ++r) inflight->Remove(&calls[r].ctx);
  }
  return calls;
}

// 128 bits from the kernel's CSPRNG (getrandom): a lease id is a capability (a Fetch or EndLease
// naming it unpins the request), so it must not be predictable from earlier ones.
std::string NewLeaseId() {
  uint64_t words[2];
  size_t got = 0;
  while (got < sizeof(words)) {
    const ssize_t n = getrandom(reinterpret_cast<char*>(words) + got, sizeof(words) - got, 0);
    if (n > 0) got += static_cast<size_t>(n);
  }
  return absl::StrCat(absl::Hex(words[0], absl::kZeroPad16), absl::Hex(words[1], absl::kZeroPad16));
}

}  // namespace

void InflightCalls::Add(grpc::ClientContext* ctx) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.insert(ctx);
  if (cancelled_) ctx->TryCancel();
}

void InflightCalls::Remove(grpc::ClientContext* ctx) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.erase(ctx);
}

void InflightCalls::CancelAll() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  for (grpc::ClientContext* ctx : calls_) ctx->TryCancel();
}

Coordinator::Coordinator(CoordinatorOptions options, Loader* local) : options_(std::move(options)), local_(local) {
  for (const std::string& addr : options_.rank_addresses) {
    stubs_.push_back(v1::LoaderRank::NewStub(options_.connect ? options_.connect(addr) : NewChannel(addr, options_.tls)));
  }
  ranks_.resize(stubs_.size());
  last_ok_.assign(stubs_.size(), std::chrono::steady_clock::now());
  for (size_t r = 0; r < ranks_.size(); ++r) {
    ranks_[r].set_rank(r);
    ranks_[r].set_state(std::string(RankStateName(RankState::kLoading)));
    ranks_[r].set_address(options_.rank_addresses[r]);
  }
}

Coordinator::~Coordinator() { Stop(); }

std::chrono::milliseconds PollDelay(const std::vector<v1::RankState>& ranks, std::chrono::milliseconds interval,
                                    std::chrono::milliseconds floor) {
  std::chrono::milliseconds delay = interval;
  for (const v1::RankState& r : ranks) {
    if (ParseRankState(r.state()) != RankState::kLoading || !(r.eta_seconds() >= 0)) continue;
    const double half_eta_ms = std::min(r.eta_seconds() * 500.0, static_cast<double>(interval.count()));
    delay = std::min(delay, std::max(floor, std::chrono::milliseconds(static_cast<int64_t>(half_eta_ms))));
  }
  return delay;
}

void Coordinator::Start() {
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      Poll();
      std::unique_lock<std::mutex> lock(mu_);
      const auto delay = state_ == RankState::kLoading
                             ? PollDelay(ranks_, options_.poll_interval, options_.min_poll_interval)
                             : options_.poll_interval;
      cv_.wait_for(lock, delay, [this] { return stop_.load() || wake_; });
      wake_ = false;
    }
  });
}

void Coordinator::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

void Coordinator::Stop() {
  stop_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Coordinator::SetState(RankState state, const std::string& reason) {
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Sticky: failed stays failed; stopping gives way only to failed (a rank that dies during the
    // drain must still fail its in-flight clients at once).
    if (state_ == RankState::kFailed || (state_ == RankState::kStopping && state != RankState::kFailed)) return;
    changed = state_ != state;
    state_ = state;
    reason_ = reason;
  }
  cv_.notify_all();
  if (changed && state == RankState::kFailed) manifest_calls_.CancelAll();  // they would wait on the dead rank
  if (changed && options_.on_state) options_.on_state(state);
}

void Coordinator::Poll() {
  // A rank that has not answered for this long is considered gone.
  const auto grace = std::min(options_.deadline, std::chrono::milliseconds(3000));
  const auto rpc_deadline = std::min(options_.deadline, std::chrono::milliseconds(2000));
  // Wait for the answers without holding mu_: Manifest() and Status() must not queue behind a
  // slow or dead rank's poll.
  const v1::StatusRequest request;
  const uint64_t round = ++poll_rounds_started_;
  auto answers = CallEveryRank<v1::RankState>(
      stubs_.size(), options_.token, rpc_deadline,
      [&](size_t r, RankCall<v1::RankState>* call, std::function<void(grpc::Status)> done) {
        stubs_[r]->async()->GetRankState(&call->ctx, &request, &call->reply, std::move(done));
      });
  bool all_ready = true;
  std::string failure;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    polled_round_ = round;
    for (size_t r = 0; r < stubs_.size(); ++r) {
      const grpc::Status& s = answers[r].status;
      v1::RankState& st = answers[r].reply;
      if (s.ok()) {
        st.set_address(options_.rank_addresses[r]);
        ranks_[r] = st;
        last_ok_[r] = now;
        const std::optional<RankState> rank_state = ParseRankState(st.state());
        if (rank_state == RankState::kFailed && failure.empty()) {
          failure = absl::StrCat("loader rank ", r, " failed: ", st.last_error());
        }
        all_ready &= rank_state == RankState::kReady;
      } else {
        all_ready = false;
        if (now - last_ok_[r] > grace) {
          ranks_[r].set_state(std::string(RankStateName(RankState::kFailed)));
          ranks_[r].set_last_error(absl::StrCat("not answering: ", s.error_message()));
          if (failure.empty()) {
            failure = absl::StrCat("loader rank ", r, " (", options_.rank_addresses[r], ") stopped answering for ",
                                   std::chrono::duration_cast<std::chrono::milliseconds>(now - last_ok_[r]).count(),
                                   " ms: ", s.error_message());
          }
        }
      }
    }
  }
  if (!failure.empty()) {
    SetState(RankState::kFailed, failure);
    return;
  }
  SetState(all_ready ? RankState::kReady : RankState::kLoading, "");
}

RankState Coordinator::state() {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

RankState Coordinator::WaitUntilSettled(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return state_ != RankState::kLoading; });
  return state_;
}

void Coordinator::StartDraining() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A failed service stays failed, with its reason (no "stopping" announced either).
    if (state_ == RankState::kStopping || state_ == RankState::kFailed) return;
    state_ = RankState::kStopping;
    reason_ = "shutting down: no new requests; transfers in flight finish";
  }
  cv_.notify_all();
  if (options_.on_state) options_.on_state(RankState::kStopping);
}

void Coordinator::EndLease(const std::string& lease) {
  v1::EndLeaseRequest req;
  req.set_lease_id(lease);
  CallEveryRank<v1::EndLeaseReply>(stubs_.size(), options_.token, std::min(options_.deadline, std::chrono::milliseconds(2000)),
                                   [&](size_t r, RankCall<v1::EndLeaseReply>* call, std::function<void(grpc::Status)> done) {
                                     stubs_[r]->async()->EndLease(&call->ctx, &req, &call->reply, std::move(done));
                                   });
}

absl::StatusOr<v1::Manifest> Coordinator::Manifest(const v1::ShardRequest& request) {
  ++manifests_in_flight_;
  struct Done {
    std::atomic<uint32_t>* n;
    ~Done() { --*n; }
  } done{&manifests_in_flight_};
  absl::StatusOr<v1::Manifest> m = ManifestOnce(request);
  if (absl::IsResourceExhausted(m.status())) {
    // Under memory pressure, concurrent manifests can each hold, on some rank, the room another
    // needs (every rank produces requests in its own order), so that none succeeds everywhere:
    // retry once with such retries one at a time, which lets one request through.
    std::lock_guard<std::mutex> lock(retry_mu_);
    m = ManifestOnce(request);
  }
  if (m.ok()) ++manifests_served_;
  // A poll round that started before now may have asked a rank before this manifest pinned its
  // lease there: Idle() trusts only rounds started later.
  last_manifest_round_.store(poll_rounds_started_.load());
  return m;
}

absl::Status Coordinator::CheckServing() {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == RankState::kStopping) return absl::UnavailableError("shardcastd is shutting down: no new requests");
  if (state_ == RankState::kFailed) return absl::UnavailableError(absl::StrCat("shardcastd has failed: ", reason_));
  if (state_ != RankState::kReady) {
    return absl::FailedPreconditionError("shardcastd is still loading; retry when ready (shardcast status --wait-ready)");
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Manifest> Coordinator::ManifestOnce(const v1::ShardRequest& request) {
  SC_RETURN_IF_ERROR(CheckServing());
  // The request id is computed once, here, from the validated request; every rank checks that
  // it computes the same (LoaderService::Prepare) and refuses the request otherwise.
  const ShardRequestSpec spec = ShardRequestFromProto(request);
  SC_RETURN_IF_ERROR(ValidateShardRequest(spec));
  if (request.known_manifest().size() > kMaxKnownManifestBytes) {
    return absl::InvalidArgumentError(absl::StrCat("known_manifest has ", request.known_manifest().size(),
                                                   " bytes; a manifest's digest has 32"));
  }
  v1::PrepareRequest prepare;
  *prepare.mutable_request() = request;
  prepare.mutable_request()->clear_known_manifest();  // the other ranks need not see it
  prepare.set_request_id(local_->RequestId(spec));
  prepare.set_lease_id(NewLeaseId());
  absl::StatusOr<v1::Manifest> m = PrepareEverywhere(spec, prepare);
  // What the ranks pinned; also on a rank whose Prepare timed out here but may still finish
  // (EndLease of an unknown lease is a no-op).
  if (!m.ok()) {
    EndLease(prepare.lease_id());
    return m;
  }
  SetDigestAndTrimIfKnown(request.known_manifest(), &*m);
  return m;
}

absl::StatusOr<v1::Manifest> Coordinator::PrepareEverywhere(const ShardRequestSpec& spec,
                                                            const v1::PrepareRequest& prepare) {
  // Prepare on every rank at once, each pinning the request under this manifest's lease. Rank 0
  // (stubs_[0]) prepares through its own loader while the others' calls run: a call to itself
  // would serialize, parse and copy every shard's entry once more (8 us a shard).
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> local;
  auto calls = CallEveryRank<v1::PrepareReply>(
      stubs_.size() - 1, options_.token, options_.deadline,
      [&](size_t r, RankCall<v1::PrepareReply>* call, std::function<void(grpc::Status)> done) {
        stubs_[r + 1]->async()->Prepare(&call->ctx, &prepare, &call->reply, std::move(done));
      },
      &manifest_calls_, [&] { local = local_->Prepare(spec, prepare.lease_id()); });
  if (!local.ok()) return PrepareError(0, local.status());
  std::unordered_map<std::string_view, v1::ShardInfo*> remote;
  for (size_t r = 0; r + 1 < stubs_.size(); ++r) {
    if (!calls[r].status.ok()) return PrepareError(r + 1, FromGrpcStatus(calls[r].status));
    for (v1::ShardInfo& si : *calls[r].reply.mutable_shards()) remote.emplace(si.name(), &si);
  }
  // The plan order and owners come from rank 0's own (identical) plan.
  return MergeManifest(**local, &remote, prepare);
}

// The first rank's error, as the client should see it.
absl::Status Coordinator::PrepareError(size_t rank, const absl::Status& s) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == RankState::kFailed) return absl::UnavailableError(absl::StrCat("shardcastd has failed: ", reason_));
  }
  // A request error is the same on every rank: report it plainly; otherwise name the rank.
  if (absl::IsInvalidArgument(s) || absl::IsNotFound(s)) return s;
  const std::string named = absl::StrCat("loader rank ", rank, " (", options_.rank_addresses[rank], "): ", s.message());
  if (absl::IsDeadlineExceeded(s)) return absl::UnavailableError(named);
  return absl::Status(s.code(), named);
}

absl::StatusOr<v1::Manifest> Coordinator::MergeManifest(const PreparedRequest& plan,
                                                        std::unordered_map<std::string_view, v1::ShardInfo*>* remote,
                                                        const v1::PrepareRequest& prepare) const {
  v1::Manifest m;
  m.set_request_id(prepare.request_id());
  m.set_lease_id(prepare.lease_id());
  m.set_lease_seconds(std::chrono::duration<double>(options_.deadline).count());
  uint64_t total = 0;
  for (const PreparedShard& s : plan.shards) {
    v1::ShardInfo* out = m.add_shards();
    total += s.nbytes;
    if (s.owner == 0) {  // rank 0's own: from its prepared request
      ToProto(s, out);
      continue;
    }
    auto it = remote->find(s.name);
    if (it == remote->end()) {
      return absl::InternalError(absl::StrCat("rank ", s.owner, " did not report shard '", s.name, "'"));
    }
    out->Swap(it->second);  // moved, not copied (the reply is not used again)
    remote->erase(it);      // a shard reported twice is reported missing the second time
  }
  for (const std::string& o : plan.opaque) m.add_opaque(o);
  for (const std::string& n : plan.notes) m.add_notes(n);
  m.set_total_bytes(total);
  for (size_t r = 0; r < options_.rank_addresses.size(); ++r) {
    v1::RankEndpoint* e = m.add_endpoints();
    e->set_rank(r);
    e->set_address(options_.rank_addresses[r]);
  }
  return m;
}

v1::ServiceStatus Coordinator::Status() {
  v1::ServiceStatus st;
  std::lock_guard<std::mutex> lock(mu_);
  st.set_state(std::string(RankStateName(state_)));
  st.set_reason(reason_);
  st.set_uptime_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  st.set_checkpoint(options_.checkpoint);
  st.set_nccl_version(options_.nccl_version);
  st.set_world_size(ranks_.size());
  std::vector<LoadProgress> progress;
  for (const v1::RankState& r : ranks_) {
    *st.add_ranks() = r;
    progress.push_back(RankProgress(r.payload_bytes_done(), r.bytes_selected(), r.load_seconds(),
                                    r.state() == RankStateName(RankState::kReady)));
    if (r.state() == RankStateName(RankState::kFailed)) progress.back().eta_seconds = -1;  // will not finish
  }
  const LoadProgress total = ServiceProgress(progress);
  st.set_payload_bytes_done(total.done);
  st.set_payload_bytes_total(total.total);
  st.set_percent(total.percent);
  st.set_eta_seconds(total.eta_seconds);
  st.set_manifests_in_flight(manifests_in_flight_.load());
  st.set_manifests_served(manifests_served_.load());
  for (const std::string& id : local_->Snapshot().cached_requests) st.add_cached_layouts(id);
  return st;
}

bool Coordinator::Idle() {
  if (manifests_in_flight_.load() > 0) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (polled_round_ <= last_manifest_round_.load()) return false;  // no poll since the last manifest
  for (const v1::RankState& r : ranks_) {
    if (r.clients_active() > 0 || r.leases_pinned() > 0) return false;
  }
  return true;
}

}  // namespace shardcast
