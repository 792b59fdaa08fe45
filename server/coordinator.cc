#include "server/coordinator.h"

#include <future>
#include <map>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "server/grpc_util.h"
#include "server/proto_convert.h"

namespace shardcast {

Coordinator::Coordinator(CoordinatorOptions options, Loader* local) : options_(std::move(options)), local_(local) {
  for (const std::string& addr : options_.rank_addresses) {
    stubs_.push_back(v1::LoaderRank::NewStub(NewChannel(addr, options_.tls)));
  }
  ranks_.resize(stubs_.size());
  last_ok_.assign(stubs_.size(), std::chrono::steady_clock::now());
  for (size_t r = 0; r < ranks_.size(); ++r) {
    ranks_[r].set_rank(r);
    ranks_[r].set_state("loading");
    ranks_[r].set_address(options_.rank_addresses[r]);
  }
}

Coordinator::~Coordinator() { Stop(); }

void Coordinator::Start() {
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      Poll();
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, options_.poll_interval, [this] { return stop_.load(); });
    }
  });
}

void Coordinator::Stop() {
  stop_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Coordinator::SetState(const std::string& state, const std::string& reason) {
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == "failed") return;  // sticky
    changed = state_ != state;
    state_ = state;
    reason_ = reason;
  }
  cv_.notify_all();
  if (changed && options_.on_state) options_.on_state(state);
}

void Coordinator::Poll() {
  // A rank that has not answered for this long is considered gone.
  const auto grace = std::min(options_.deadline, std::chrono::milliseconds(3000));
  const auto rpc_deadline = std::min(options_.deadline, std::chrono::milliseconds(2000));
  std::vector<std::future<std::pair<grpc::Status, v1::RankState>>> calls;
  for (size_t r = 0; r < stubs_.size(); ++r) {
    calls.push_back(std::async(std::launch::async, [this, r, rpc_deadline] {
      grpc::ClientContext ctx;
      PrepareClientContext(&ctx, options_.token, rpc_deadline);
      v1::RankState st;
      grpc::Status s = stubs_[r]->GetRankState(&ctx, v1::StatusRequest(), &st);
      return std::make_pair(s, st);
    }));
  }
  // Wait for the answers without holding mu_: Manifest() and Status() must not queue behind a
  // slow or dead rank's poll.
  std::vector<std::pair<grpc::Status, v1::RankState>> answers;
  for (auto& c : calls) answers.push_back(c.get());
  bool all_ready = true;
  std::string failure;
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t r = 0; r < answers.size(); ++r) {
      auto& [s, st] = answers[r];
      if (s.ok()) {
        st.set_address(options_.rank_addresses[r]);
        ranks_[r] = st;
        last_ok_[r] = now;
        if (st.state() == "failed" && failure.empty()) {
          failure = absl::StrCat("loader rank ", r, " failed: ", st.last_error());
        }
        all_ready &= st.state() == "ready";
      } else {
        all_ready = false;
        if (now - last_ok_[r] > grace) {
          ranks_[r].set_state("failed");
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
    SetState("failed", failure);
    return;
  }
  SetState(all_ready ? "ready" : "loading", "");
}

std::string Coordinator::state() {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

std::string Coordinator::WaitUntilSettled(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return state_ != "loading"; });
  return state_;
}

absl::StatusOr<v1::Manifest> Coordinator::Manifest(const v1::ShardRequest& request) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == "failed") return absl::UnavailableError(absl::StrCat("shardcastd has failed: ", reason_));
    if (state_ != "ready") return absl::FailedPreconditionError("shardcastd is still loading; retry when ready (shardcast status --wait-ready)");
  }
  const ShardRequestSpec spec = FromProto(request);
  const std::string id = local_->RequestId(spec);
  // Prepare on every rank in parallel (rank 0 included, through its own service).
  std::vector<std::future<std::pair<grpc::Status, v1::PrepareReply>>> calls;
  for (size_t r = 0; r < stubs_.size(); ++r) {
    calls.push_back(std::async(std::launch::async, [&, r] {
      grpc::ClientContext ctx;
      PrepareClientContext(&ctx, options_.token, options_.deadline);
      v1::PrepareRequest pr;
      *pr.mutable_request() = request;
      pr.set_request_id(id);
      v1::PrepareReply reply;
      grpc::Status s = stubs_[r]->Prepare(&ctx, pr, &reply);
      return std::make_pair(s, reply);
    }));
  }
  std::map<std::string, v1::ShardInfo> owned;
  absl::Status first_error;
  for (size_t r = 0; r < calls.size(); ++r) {
    auto [s, reply] = calls[r].get();
    if (!s.ok()) {
      if (first_error.ok()) {
        // A request error is the same on every rank: report it plainly; otherwise name the rank.
        first_error = s.error_code() == grpc::StatusCode::INVALID_ARGUMENT || s.error_code() == grpc::StatusCode::NOT_FOUND
                          ? FromGrpcStatus(s)
                          : FromGrpcStatus(s, absl::StrCat("loader rank ", r, " (", options_.rank_addresses[r], ")"));
      }
      continue;
    }
    for (const v1::ShardInfo& si : reply.shards()) owned[si.name()] = si;
  }
  if (!first_error.ok()) {
    if (first_error.code() == absl::StatusCode::kDeadlineExceeded) {
      return absl::UnavailableError(std::string(first_error.message()));
    }
    return first_error;
  }
  // The plan order and owners come from rank 0's own (identical) plan.
  std::shared_ptr<const PreparedRequest> local = local_->Find(id);
  if (local == nullptr) return absl::InternalError("rank 0 lost the request it just prepared");
  v1::Manifest m;
  m.set_request_id(id);
  uint64_t total = 0;
  for (const PreparedShard& s : local->shards) {
    auto it = owned.find(s.name);
    if (it == owned.end()) {
      return absl::InternalError(absl::StrCat("rank ", s.owner, " did not report shard '", s.name, "'"));
    }
    *m.add_shards() = it->second;
    total += s.nbytes;
  }
  for (const std::string& o : local->opaque) m.add_opaque(o);
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
  st.set_state(state_);
  st.set_reason(reason_);
  st.set_uptime_seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  st.set_checkpoint(options_.checkpoint);
  st.set_nccl_version(options_.nccl_version);
  st.set_world_size(ranks_.size());
  for (const v1::RankState& r : ranks_) *st.add_ranks() = r;
  for (const std::string& id : local_->Snapshot().cached_requests) st.add_cached_layouts(id);
  return st;
}

}  // namespace shardcast
