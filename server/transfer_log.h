// One log line per client transfer finished on a loader rank (transport, bytes, milliseconds,
// the client's address, ok or the error), shared by the gRPC byte stream (loader_service) and the
// GPU data plane (device_sender: NCCL sends and CUDA IPC leases).
#ifndef SHARDCAST_SERVER_TRANSFER_LOG_H_
#define SHARDCAST_SERVER_TRANSFER_LOG_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/rank_counters.h"

namespace shardcast {

absl::string_view TransportName(Transport transport);

// A transfer's clock, started at construction. Copyable (it rides in queued jobs and leases).
class TransferLog {
 public:
  TransferLog(Transport transport, std::string request_id, std::string peer, uint64_t bytes)
      : transport_(transport),
        request_id_(std::move(request_id)),
        peer_(std::move(peer)),
        bytes_(bytes),
        start_(std::chrono::steady_clock::now()) {}

  // Logs "transfer finished": info when `result` is OK, else a warning with its code and message.
  void Finish(const absl::Status& result) const;
  Transport transport() const { return transport_; }
  uint64_t bytes() const { return bytes_; }

 private:
  Transport transport_;
  std::string request_id_;
  std::string peer_;
  uint64_t bytes_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_TRANSFER_LOG_H_
