// NcclSender: a loader rank's side of the NCCL data plane. For each client session it forms a
// two-rank communicator once (reused by later transfers of that session) and sends the prepared
// shards straight from GPU memory, on a worker thread, with deadlines.
#ifndef SHARDCAST_TRANSPORT_NCCL_SENDER_H_
#define SHARDCAST_TRANSPORT_NCCL_SENDER_H_

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "proto/shardcast/v1/shardcast.pb.h"
#include "server/loader.h"
#include "transport/nccl_lib.h"

namespace shardcast {

class NcclSender {
 public:
  static absl::StatusOr<std::unique_ptr<NcclSender>> Create(const std::string& nccl_library, int device,
                                                            std::chrono::milliseconds deadline, Loader* loader);
  ~NcclSender();

  // Checks versions, then (new session) returns a unique id and starts forming the communicator,
  // and queues the transfer of the requested shards. FailedPrecondition on a version mismatch.
  absl::StatusOr<v1::OpenSessionReply> Open(std::shared_ptr<const PreparedRequest> request,
                                            const v1::OpenSessionRequest& open);
  int version() const { return lib_->version; }

 private:
  struct Session;
  NcclSender() = default;
  std::shared_ptr<const NcclLib> lib_;
  int device_ = 0;
  std::chrono::milliseconds deadline_{60000};
  Loader* loader_ = nullptr;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
};

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_NCCL_SENDER_H_
