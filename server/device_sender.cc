#include "server/device_sender.h"

#include <atomic>
#include <deque>
#include <iostream>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "transport/cuda_ipc.h"
#include "transport/device_plane.h"
#include "transport/nccl_comm.h"
#include "transport/session_limits.h"

namespace shardcast {
namespace {

// An NCCL session unused this long is closed (its client has most likely ended); a client that
// comes back later simply forms a new one.
constexpr std::chrono::minutes kIdleSessionLimit{5};
// Unreleased CUDA IPC leases kept at once (each pins a prepared request until released or expired).
constexpr size_t kMaxIpcLeases = 1024;

uint64_t TotalBytes(const std::vector<const PreparedShard*>& shards) {
  uint64_t n = 0;
  for (const PreparedShard* s : shards) n += s->nbytes;
  return n;
}

}  // namespace

// One client's NCCL session: a worker thread that forms the communicator, then runs transfers in
// order. A job gets the communicator, or null and the reason there is none.
struct DeviceSender::Session {
  using Job = std::function<void(NcclPeerComm* comm, const absl::Status& no_comm)>;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> work;
  bool stop = false;
  std::atomic<bool> dead{false};
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();
  std::thread thread;

  void Run(std::shared_ptr<const NcclLib> lib, std::string uid, int device, std::chrono::milliseconds deadline,
           std::string sid);
  ~Session() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    if (thread.joinable()) thread.join();
  }
};

void DeviceSender::Session::Run(std::shared_ptr<const NcclLib> lib, std::string uid, int device,
                                std::chrono::milliseconds deadline, std::string sid) {
  absl::StatusOr<std::unique_ptr<NcclPeerComm>> comm = NcclPeerComm::Create(lib, uid, 0, device, deadline);
  if (!comm.ok()) {
    LogError("NCCL session ", sid, ": ", comm.status().message());
    dead = true;  // at once: after a warm-up no job may come to find out, and the next Open must not reuse it
  }
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [this] { return stop || !work.empty(); });
      if (work.empty()) break;
      job = std::move(work.front());
    }
    if (!comm.ok()) {
      dead = true;
      job(nullptr, absl::Status(comm.status().code(),
                                absl::StrCat("the NCCL session could not be formed: ", comm.status().message())));
    } else if ((*comm)->broken()) {
      dead = true;
      job(nullptr, absl::UnavailableError("the NCCL session is broken (an earlier transfer failed or was cancelled)"));
    } else {
      job(comm->get(), absl::OkStatus());
      // A failed or cancelled transfer leaves the communicator broken: the client's next Open
      // forms a new session instead of being told to reuse this one.
      if ((*comm)->broken()) dead = true;
    }
    std::lock_guard<std::mutex> lock(mu);
    work.pop_front();
    last_used = std::chrono::steady_clock::now();
  }
}

absl::StatusOr<std::unique_ptr<DeviceSender>> DeviceSender::Create(const std::string& nccl_library, int device,
                                                                   std::chrono::milliseconds deadline, Loader* loader) {
  std::unique_ptr<DeviceSender> s(new DeviceSender);
  SC_ASSIGN_OR_RETURN(s->lib_, NcclLib::Load(nccl_library));
  SC_ASSIGN_OR_RETURN(s->uuid_, DeviceUuid(device));
  s->device_ = device;
  s->deadline_ = deadline;
  s->loader_ = loader;
  return s;
}

DeviceSender::~DeviceSender() {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.clear();
  leases_.clear();
}

void DeviceSender::ExpireLeases() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.expires < now) {
      it->second.log.Finish(absl::DeadlineExceededError(absl::StrCat("CUDA IPC lease ", it->first, " expired unreleased")));
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<std::vector<const PreparedShard*>> DeviceSender::SelectShards(const PreparedRequest& request,
                                                                             const v1::OpenSessionRequest& open) const {
  // The shards to send, in the client's order (default: plan order).
  std::vector<const PreparedShard*> shards;
  std::unordered_map<std::string_view, const PreparedShard*> owned;
  for (const PreparedShard& s : request.shards) {
    if (s.owner != loader_->options().rank) continue;
    if (open.names().empty()) {
      shards.push_back(&s);
    } else {
      owned.emplace(s.name, &s);
    }
  }
  for (const std::string& n : open.names()) {
    auto it = owned.find(n);
    if (it == owned.end()) {
      return absl::InvalidArgumentError(absl::StrCat("shard '", n, "' is not held by rank ", loader_->options().rank));
    }
    shards.push_back(it->second);
  }
  return shards;
}

absl::Status DeviceSender::CheckNcclPeer(const v1::OpenSessionRequest& open) const {
  if (open.client_nccl_version() == 0) {
    return absl::FailedPreconditionError(absl::StrCat("the client has no NCCL library loaded and is not on this loader "
                                                      "rank's GPU: give it the libnccl.so.2 the service uses (",
                                                      lib_->path, ", version ", lib_->version, ")"));
  }
  if (open.client_nccl_version() != lib_->version) {
    return NcclVersionMismatch(lib_->version, lib_->path, open.client_nccl_version());
  }
  return CheckSessionId(open.session_id());
}

absl::StatusOr<v1::OpenSessionReply> DeviceSender::Open(std::shared_ptr<const PreparedRequest> request,
                                                         const v1::OpenSessionRequest& open, const std::string& peer) {
  SC_ASSIGN_OR_RETURN(const std::vector<const PreparedShard*> shards, SelectShards(*request, open));
  if (open.client_device_uuid() != uuid_) {
    SC_RETURN_IF_ERROR(CheckNcclPeer(open));
    return OpenNccl(std::move(request), shards, open, peer);
  }
  if (!open.allow_ipc()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the client is on this loader rank's GPU (", FormatUuid(uuid_), "), where NCCL cannot connect two ranks, and "
        "it refused CUDA IPC: allow IPC, or run the client on another GPU"));
  }
  if (open.warm_up()) {  // CUDA IPC needs no set-up
    v1::OpenSessionReply reply;
    reply.set_server_nccl_version(lib_->version);
    reply.mutable_ipc();
    return reply;
  }
  return OpenIpc(std::move(request), shards, peer);
}

absl::StatusOr<v1::OpenSessionReply> DeviceSender::OpenIpc(std::shared_ptr<const PreparedRequest> request,
                                                            const std::vector<const PreparedShard*>& shards,
                                                            const std::string& peer) {
  TransferLog log(Transport::kIpc, request->id, peer, TotalBytes(shards));
  std::vector<IpcSource> sources;
  for (const PreparedShard* s : shards) {
    sources.push_back(IpcSource{s->name, s->allocation, s->data, s->nbytes, s->resident});
  }
  v1::OpenSessionReply reply;
  reply.set_server_nccl_version(lib_->version);
  SC_ASSIGN_OR_RETURN(*reply.mutable_ipc(), ExportIpcShards(device_, sources));
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLeases();
  if (leases_.size() >= kMaxIpcLeases) {
    return absl::ResourceExhaustedError(absl::StrCat(leases_.size(), " CUDA IPC leases are unreleased on loader rank ",
                                                     loader_->options().rank, " (the limit); retry later"));
  }
  const std::string lease = absl::StrCat("ipc-", loader_->options().rank, "-", ++next_lease_);
  leases_.emplace(lease, Lease{std::move(request), std::chrono::steady_clock::now() + deadline_,
                               TransferGuard(loader_->transfers()), std::move(log)});
  reply.mutable_ipc()->set_lease(lease);
  return reply;
}

void DeviceSender::ExpireIdle() {
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLeases();
}

absl::Status DeviceSender::ReleaseIpc(const std::string& lease) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(lease);
  if (it == leases_.end()) {
    ExpireLeases();
    return absl::NotFoundError(absl::StrCat("no CUDA IPC lease '", lease, "' (expired after the service's deadline?)"));
  }
  it->second.log.Finish(absl::OkStatus());
  loader_->transfers()->BytesSent(Transport::kIpc, it->second.log.bytes());
  leases_.erase(it);  // its TransferGuard reports the transfer finished
  ExpireLeases();
  return absl::OkStatus();
}

absl::StatusOr<v1::OpenSessionReply> DeviceSender::OpenNccl(std::shared_ptr<const PreparedRequest> request,
                                                             const std::vector<const PreparedShard*>& shards,
                                                             const v1::OpenSessionRequest& open,
                                                             const std::string& peer) {
  v1::OpenSessionReply reply;
  reply.set_server_nccl_version(lib_->version);
  v1::NcclSession* nccl = reply.mutable_nccl();
  for (const PreparedShard* s : shards) nccl->add_names(s->name);
  SC_ASSIGN_OR_RETURN(std::shared_ptr<Session> session, FindOrStartSession(open.session_id(), nccl));
  if (open.warm_up()) return reply;  // the session's thread forms the communicator; nothing to send yet
  TransferLog log(Transport::kNccl, request->id, peer, TotalBytes(shards));
  SC_ASSIGN_OR_RETURN(const uint64_t transfer_id,
                      QueueTransfer(session.get(), open.session_id(), std::move(request), shards, std::move(log)));
  nccl->set_transfer_id(transfer_id);
  return reply;
}

absl::StatusOr<std::shared_ptr<DeviceSender::Session>> DeviceSender::FindOrStartSession(const std::string& session_id,
                                                                                        v1::NcclSession* nccl) {
  std::vector<std::shared_ptr<Session>> idle;  // closed outside the lock (joins their threads)
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    std::lock_guard<std::mutex> session_lock(it->second->mu);
    const bool busy = !it->second->work.empty();
    if (it->first != session_id && !busy && (it->second->dead || now - it->second->last_used > kIdleSessionLimit)) {
      idle.push_back(it->second);
      it = sessions_.erase(it);
    } else {
      ++it;
    }
  }
  auto it = sessions_.find(session_id);
  if (it != sessions_.end() && !it->second->dead) {
    nccl->set_reused(true);
    return it->second;
  }
  // One worker thread and communicator per session: a bounded number of them.
  SC_RETURN_IF_ERROR(CheckSessionCapacity(sessions_.size() - (it != sessions_.end()), kMaxNcclSessions));
  SC_ASSIGN_OR_RETURN(std::string uid, NcclPeerComm::NewUniqueId(*lib_));
  auto session = std::make_shared<Session>();
  sessions_[session_id] = session;
  nccl->set_unique_id(uid);
  session->thread = std::thread(&Session::Run, session.get(), lib_, uid, device_, deadline_, session_id);
  return session;
}

absl::StatusOr<uint64_t> DeviceSender::QueueTransfer(Session* session, const std::string& session_id,
                                                     std::shared_ptr<const PreparedRequest> request,
                                                     const std::vector<const PreparedShard*>& shards, TransferLog log) {
  {
    std::lock_guard<std::mutex> lock(session->mu);
    SC_RETURN_IF_ERROR(CheckQueueCapacity(session->work.size()));
  }
  std::vector<ShardSource> sources;
  for (const PreparedShard* s : shards) sources.push_back(ShardSource{s->name, s->nbytes, s->data, nullptr});
  const uint64_t id = transfers_.Start(session_id);
  // The job keeps the prepared request alive until its bytes have left; the transfer is reported
  // finished when the job is done with (run or dropped).
  auto transfer = std::make_shared<TransferGuard>(loader_->transfers());
  auto job = [this, id, request, sources, transfer, log = std::move(log), deadline = deadline_](
                 NcclPeerComm* comm, const absl::Status& no_comm) {
    absl::Status sent = no_comm;
    if (comm != nullptr) sent = NcclShardSender(comm).Send(sources, std::chrono::steady_clock::now() + deadline);
    log.Finish(sent);  // a warning with the reason when the send failed
    if (sent.ok()) loader_->transfers()->BytesSent(Transport::kNccl, log.bytes());
    transfers_.Finish(id, sent);
  };
  {
    std::lock_guard<std::mutex> lock(session->mu);
    session->last_used = std::chrono::steady_clock::now();
    session->work.push_back(std::move(job));
  }
  session->cv.notify_all();
  return id;
}

absl::Status DeviceSender::AwaitTransfer(const std::string& session_id, uint64_t transfer_id,
                                         const std::function<bool()>& cancelled, absl::Status* sent) {
  absl::Status waited = transfers_.Await(session_id, transfer_id, std::chrono::steady_clock::now() + deadline_, cancelled, sent);
  if (absl::IsNotFound(waited)) {
    return absl::NotFoundError(absl::StrCat(waited.message(), " on loader rank ", loader_->options().rank));
  }
  return waited;
}

}  // namespace shardcast
