// The transfer line of server/transfer_log.h.
#include "server/transfer_log.h"

#include "common/log.h"

namespace shardcast {

absl::string_view TransportName(Transport transport) {
  switch (transport) {
    case Transport::kStream: return "stream";
    case Transport::kNccl: return "nccl";
    case Transport::kIpc: return "ipc";
  }
  return "unknown";
}

void TransferLog::Finish(const absl::Status& result) const {
  const int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_).count();
  if (result.ok()) {
    LogEvent(LogLevel::kInfo, "transfer finished",
             {{"transport", TransportName(transport_)}, {"request_id", request_id_}, {"bytes", bytes_}, {"ms", ms},
              {"peer", peer_}, {"ok", true}});
    return;
  }
  LogEvent(LogLevel::kWarning, "transfer failed",
           {{"transport", TransportName(transport_)}, {"request_id", request_id_}, {"bytes", bytes_}, {"ms", ms},
            {"peer", peer_}, {"ok", false}, {"code", absl::StatusCodeToString(result.code())},
            {"error", result.message().substr(0, 500)}});
}

}  // namespace shardcast
