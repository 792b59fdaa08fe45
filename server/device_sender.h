// DeviceSender: a loader rank's side of the GPU data plane (transport/device_plane.h). A client on
// another GPU gets an NCCL session: a two-rank communicator formed once (reused by later
// transfers of that session), the prepared shards sent straight from GPU memory on the session's
// worker thread, with deadlines; each transfer's result is kept for AwaitTransfer, so the client
// learns of a failed send at once. A client on this rank's own GPU (NCCL refuses that) gets CUDA
// IPC handles instead, and a lease that pins the shards until it releases them or the deadline
// passes. Session ids are validated and sessions and IPC leases are capped
// (transport/session_limits.h): RESOURCE_EXHAUSTED beyond.
#ifndef SHARDCAST_SERVER_DEVICE_SENDER_H_
#define SHARDCAST_SERVER_DEVICE_SENDER_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/shardcast/v1/shardcast.pb.h"
#include "server/loader.h"
#include "server/rank_counters.h"
#include "server/transfer_log.h"
#include "transport/nccl_lib.h"
#include "transport/transfer_results.h"

namespace shardcast {

class DeviceSender {
 public:
  static absl::StatusOr<std::unique_ptr<DeviceSender>> Create(const std::string& nccl_library, int device,
                                                              std::chrono::milliseconds deadline, Loader* loader);
  ~DeviceSender();

  // Same GPU (and the client allows it): exports CUDA IPC handles under a lease. Otherwise checks
  // NCCL versions (FailedPrecondition on a mismatch), returns a unique id for a new session and
  // starts forming its communicator, and queues the transfer of the requested shards. `peer`
  // (the client's address) goes into the transfer's log line.
  absl::StatusOr<v1::OpenSessionReply> Open(std::shared_ptr<const PreparedRequest> request,
                                            const v1::OpenSessionRequest& open, const std::string& peer);
  // Ends a CUDA IPC lease (the client has copied). NotFound for an unknown or expired lease.
  absl::Status ReleaseIpc(const std::string& lease);
  // Ends the CUDA IPC leases whose deadline has passed (their transfers count as finished).
  void ExpireIdle();
  // Sets `*sent` to how NCCL transfer `transfer_id` of `session_id` ended, once its send has; waits
  // at most the service's deadline and while `cancelled` is false. Returns the wait's status:
  // NotFound for an unknown transfer, DeadlineExceeded / Cancelled when the wait ended first.
  absl::Status AwaitTransfer(const std::string& session_id, uint64_t transfer_id, const std::function<bool()>& cancelled,
                             absl::Status* sent);

  int version() const { return lib_->version; }

 private:
  struct Session;
  struct Lease {
    std::shared_ptr<const PreparedRequest> request;
    std::chrono::steady_clock::time_point expires;
    TransferGuard transfer;             // the client's transfer, finished when the lease goes
    TransferLog log;                    // its log line, written on release or expiry
  };
  DeviceSender() = default;
  absl::StatusOr<std::vector<const PreparedShard*>> SelectShards(const PreparedRequest& request,
                                                                 const v1::OpenSessionRequest& open) const;
  absl::Status CheckNcclPeer(const v1::OpenSessionRequest& open) const;
  absl::StatusOr<v1::OpenSessionReply> OpenIpc(std::shared_ptr<const PreparedRequest> request,
                                               const std::vector<const PreparedShard*>& shards, const std::string& peer);
  absl::StatusOr<v1::OpenSessionReply> OpenNccl(std::shared_ptr<const PreparedRequest> request,
                                                const std::vector<const PreparedShard*>& shards,
                                                const v1::OpenSessionRequest& open, const std::string& peer);
  // The session to use (an existing live one, or a new one whose unique id goes into `nccl`);
  // closes idle and dead sessions.
  absl::StatusOr<std::shared_ptr<Session>> FindOrStartSession(const std::string& session_id, v1::NcclSession* nccl);
  // Queues the send on the session's thread; its id for AwaitTransfer.
  // ResourceExhausted when the session already has kMaxQueuedTransfers waiting.
  absl::StatusOr<uint64_t> QueueTransfer(Session* session, const std::string& session_id, std::shared_ptr<const PreparedRequest> request,
                         const std::vector<const PreparedShard*>& shards, TransferLog log);
  void ExpireLeases();  // requires mu_

  std::shared_ptr<const NcclLib> lib_;
  int device_ = 0;
  std::string uuid_;
  std::chrono::milliseconds deadline_{60000};
  Loader* loader_ = nullptr;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
  std::map<std::string, Lease> leases_;
  uint64_t next_lease_ = 0;
  TransferResults transfers_;  // how each NCCL send ended, for AwaitTransfer
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_DEVICE_SENDER_H_
