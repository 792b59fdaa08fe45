#include "transport/device_sender.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <iostream>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "transport/cuda_ipc.h"
#include "transport/nccl_comm.h"
#include "transport/session_limits.h"

namespace shardcast {
namespace {

// An NCCL session unused this long is closed (its client has most likely ended); a client that
// comes back later simply forms a new one.
constexpr std::chrono::minutes kIdleSessionLimit{5};
// Unreleased CUDA IPC leases kept at once (each pins a prepared request until released or expired).
constexpr size_t kMaxIpcLeases = 1024;

}  // namespace

// One client's NCCL session: a worker thread that forms the communicator, then runs transfers in order.
struct DeviceSender::Session {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void(NcclPeerComm*)>> work;
  bool stop = false;
  std::atomic<bool> dead{false};
  std::chrono::steady_clock::time_point last_used = std::chrono::steady_clock::now();
  std::thread thread;

  ~Session() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    if (thread.joinable()) thread.join();
  }
};

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
  for (size_t i = 0; i < leases_.size(); ++i) loader_->ClientFinished();
  leases_.clear();
}

void DeviceSender::ExpireLeases() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.expires < now) {
      LogWarning("CUDA IPC lease ", it->first, " expired unreleased");
      loader_->ClientFinished();
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::StatusOr<v1::OpenSessionReply> DeviceSender::OpenIpc(std::shared_ptr<const PreparedRequest> request,
                                                            const std::vector<const PreparedShard*>& shards) {
  v1::OpenSessionReply reply;
  reply.set_server_nccl_version(lib_->version);
  std::map<const void*, uint32_t> region_of;
  for (const PreparedShard* s : shards) {
    auto [it, added] = region_of.emplace(s->allocation, static_cast<uint32_t>(region_of.size()));
    if (added) {
      SC_ASSIGN_OR_RETURN(std::string handle, ExportIpcHandle(device_, s->allocation));
      reply.add_ipc_handles(std::move(handle));
    }
    v1::IpcShard* out = reply.add_ipc_shards();
    out->set_name(s->name);
    out->set_region(it->second);
    out->set_offset(static_cast<const char*>(s->data) - static_cast<const char*>(s->allocation));
    out->set_nbytes(s->nbytes);
  }
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLeases();
  if (leases_.size() >= kMaxIpcLeases) {
    return absl::ResourceExhaustedError(absl::StrCat(leases_.size(), " CUDA IPC leases are unreleased on loader rank ",
                                                     loader_->options().rank, " (the limit); retry later"));
  }
  const std::string lease = absl::StrCat("ipc-", loader_->options().rank, "-", ++next_lease_);
  leases_[lease] = Lease{std::move(request), std::chrono::steady_clock::now() + deadline_};
  loader_->ClientStarted();
  reply.set_ipc_lease(lease);
  return reply;
}

absl::Status DeviceSender::ReleaseIpc(const std::string& lease) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(lease);
  if (it == leases_.end()) {
    ExpireLeases();
    return absl::NotFoundError(absl::StrCat("no CUDA IPC lease '", lease, "' (expired after the service's deadline?)"));
  }
  leases_.erase(it);
  loader_->ClientFinished();
  ExpireLeases();
  return absl::OkStatus();
}

absl::StatusOr<v1::OpenSessionReply> DeviceSender::Open(std::shared_ptr<const PreparedRequest> request,
                                                         const v1::OpenSessionRequest& open) {
  // The shards to send, in the client's order (default: plan order).
  std::vector<const PreparedShard*> shards;
  std::unordered_map<std::string_view, const PreparedShard*> owned;
  for (const PreparedShard& s : request->shards) {
    if (s.owner != loader_->options().rank) continue;
    owned.emplace(s.name, &s);
    if (open.names().empty()) shards.push_back(&s);
  }
  for (const std::string& n : open.names()) {
    auto it = owned.find(n);
    if (it == owned.end()) {
      return absl::InvalidArgumentError(absl::StrCat("shard '", n, "' is not held by rank ", loader_->options().rank));
    }
    shards.push_back(it->second);
  }
  if (open.client_device_uuid() == uuid_ && open.warm_up() && open.allow_ipc()) {
    return v1::OpenSessionReply();  // CUDA IPC needs no set-up
  }
  if (open.client_device_uuid() == uuid_) {
    if (open.allow_ipc()) return OpenIpc(std::move(request), shards);
    return absl::FailedPreconditionError(absl::StrCat(
        "the client is on this loader rank's GPU (", FormatUuid(uuid_), "), where NCCL cannot connect two ranks, and "
        "it refused CUDA IPC: allow IPC, or run the client on another GPU"));
  }
  if (open.client_nccl_version() == 0) {
    return absl::FailedPreconditionError(absl::StrCat("the client has no NCCL library loaded and is not on this loader "
                                                      "rank's GPU: give it the libnccl.so.2 the service uses (",
                                                      lib_->path, ", version ", lib_->version, ")"));
  }
  if (open.client_nccl_version() != lib_->version) {
    return NcclVersionMismatch(lib_->version, lib_->path, open.client_nccl_version());
  }
  SC_RETURN_IF_ERROR(CheckSessionId(open.session_id()));
  v1::OpenSessionReply reply;
  reply.set_server_nccl_version(lib_->version);
  std::vector<NcclBuffer> buffers;
  for (const PreparedShard* s : shards) {
    buffers.push_back(NcclBuffer{const_cast<void*>(s->data), s->nbytes});
    reply.add_names(s->name);
  }
  std::shared_ptr<Session> session;
  std::vector<std::shared_ptr<Session>> idle;  // closed outside the lock (joins their threads)
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      std::lock_guard<std::mutex> session_lock(it->second->mu);
      const bool busy = !it->second->work.empty();
      if (it->first != open.session_id() && !busy &&
          (it->second->dead || now - it->second->last_used > kIdleSessionLimit)) {
        idle.push_back(it->second);
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
    auto it = sessions_.find(open.session_id());
    if (it != sessions_.end() && !it->second->dead) {
      session = it->second;
      reply.set_reused(true);
    } else {
      // One worker thread and communicator per session: a bounded number of them.
      if (absl::Status room = CheckSessionCapacity(sessions_.size() - (it != sessions_.end()), kMaxNcclSessions); !room.ok()) {
        return room;
      }
      SC_ASSIGN_OR_RETURN(std::string uid, NcclPeerComm::NewUniqueId(*lib_));
      session = std::make_shared<Session>();
      sessions_[open.session_id()] = session;
      reply.set_nccl_unique_id(uid);
      Session* raw = session.get();
      auto lib = lib_;
      const int device = device_;
      const auto deadline = deadline_;
      const std::string sid = open.session_id();
      session->thread = std::thread([raw, lib, uid, device, deadline, sid] {
        absl::StatusOr<std::unique_ptr<NcclPeerComm>> comm = NcclPeerComm::Create(lib, uid, 0, device, deadline);
        if (!comm.ok()) {
          LogError("NCCL session ", sid, ": ", comm.status().message());
        }
        while (true) {
          std::function<void(NcclPeerComm*)> job;
          {
            std::unique_lock<std::mutex> lock(raw->mu);
            raw->cv.wait(lock, [raw] { return raw->stop || !raw->work.empty(); });
            if (raw->work.empty()) break;
            job = std::move(raw->work.front());
          }
          if (!comm.ok() || (*comm)->broken()) {
            raw->dead = true;
            job(nullptr);  // dropped: the client's receive times out and reports the session failure
          } else {
            job(comm->get());
          }
          std::lock_guard<std::mutex> lock(raw->mu);
          raw->work.pop_front();
          raw->last_used = std::chrono::steady_clock::now();
        }
      });
    }
  }
  idle.clear();
  if (open.warm_up()) return reply;  // the session's thread forms the communicator; nothing to send yet
  // Keep the prepared request alive until its bytes have left.
  Loader* loader = loader_;
  loader->ClientStarted();
  auto deadline = deadline_;
  {
    std::lock_guard<std::mutex> lock(session->mu);
    session->last_used = std::chrono::steady_clock::now();
    session->work.push_back([request, buffers, deadline, loader](NcclPeerComm* comm) {
      if (comm != nullptr) {
        absl::Status s = comm->Transfer(buffers, /*send=*/true, deadline);
        if (!s.ok()) LogError("NCCL send: ", s.message());
      }
      loader->ClientFinished();
    });
  }
  session->cv.notify_all();
  return reply;
}

}  // namespace shardcast
