#include "transport/nccl_sender.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <iostream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "transport/nccl_comm.h"

namespace shardcast {

// One client's session: a worker thread that forms the communicator, then runs transfers in order.
struct NcclSender::Session {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void(NcclPeerComm*)>> work;
  bool stop = false;
  bool dead = false;
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

absl::StatusOr<std::unique_ptr<NcclSender>> NcclSender::Create(const std::string& nccl_library, int device,
                                                              std::chrono::milliseconds deadline, Loader* loader) {
  std::unique_ptr<NcclSender> s(new NcclSender);
  SC_ASSIGN_OR_RETURN(s->lib_, NcclLib::Load(nccl_library));
  s->device_ = device;
  s->deadline_ = deadline;
  s->loader_ = loader;
  return s;
}

NcclSender::~NcclSender() {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.clear();
}

absl::StatusOr<v1::OpenSessionReply> NcclSender::Open(std::shared_ptr<const PreparedRequest> request,
                                                      const v1::OpenSessionRequest& open) {
  if (open.client_nccl_version() != lib_->version) {
    return NcclVersionMismatch(lib_->version, lib_->path, open.client_nccl_version());
  }
  if (open.session_id().empty()) return absl::InvalidArgumentError("session_id is required");
  v1::OpenSessionReply reply;
  reply.set_server_nccl_version(lib_->version);
  // The shards to send, in the client's order (default: plan order).
  std::vector<NcclBuffer> buffers;
  std::vector<std::string> names(open.names().begin(), open.names().end());
  if (names.empty()) {
    for (const PreparedShard& s : request->shards) {
      if (s.owner == loader_->options().rank) names.push_back(s.name);
    }
  }
  for (const std::string& n : names) {
    const PreparedShard* found = nullptr;
    for (const PreparedShard& s : request->shards) {
      if (s.name == n) found = &s;
    }
    if (found == nullptr || found->owner != loader_->options().rank) {
      return absl::InvalidArgumentError(absl::StrCat("shard '", n, "' is not held by rank ", loader_->options().rank));
    }
    buffers.push_back(NcclBuffer{const_cast<void*>(found->data), found->nbytes});
    reply.add_names(n);
  }
  std::shared_ptr<Session> session;
  std::string uid;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(open.session_id());
    if (it != sessions_.end() && !it->second->dead) {
      session = it->second;
      reply.set_reused(true);
    } else {
      SC_ASSIGN_OR_RETURN(uid, NcclPeerComm::NewUniqueId(*lib_));
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
          std::cerr << "shardcastd: NCCL session " << sid << ": " << comm.status().message() << std::endl;
        }
        while (true) {
          std::function<void(NcclPeerComm*)> job;
          {
            std::unique_lock<std::mutex> lock(raw->mu);
            raw->cv.wait(lock, [raw] { return raw->stop || !raw->work.empty(); });
            if (raw->work.empty()) break;
            job = std::move(raw->work.front());
            raw->work.pop_front();
          }
          if (!comm.ok() || (*comm)->broken()) {
            raw->dead = true;
            continue;  // drop: the client's receive times out and reports the session failure
          }
          job(comm->get());
        }
      });
    }
  }
  // Keep the prepared request alive until its bytes have left.
  Loader* loader = loader_;
  loader->ClientStarted();
  auto deadline = deadline_;
  {
    std::lock_guard<std::mutex> lock(session->mu);
    session->work.push_back([request, buffers, deadline, loader](NcclPeerComm* comm) {
      absl::Status s = comm->Transfer(buffers, /*send=*/true, deadline);
      if (!s.ok()) std::cerr << "shardcastd: NCCL send: " << s.message() << std::endl;
      loader->ClientFinished();
    });
  }
  session->cv.notify_all();
  return reply;
}

}  // namespace shardcast
