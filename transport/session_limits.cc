#include "transport/session_limits.h"

#include "absl/strings/str_cat.h"

namespace shardcast {

absl::Status CheckSessionId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("session_id is required");
  if (id.size() > kMaxSessionIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("session_id has ", id.size(), " bytes; at most ", kMaxSessionIdBytes, " are accepted"));
  }
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return absl::InvalidArgumentError("session_id must be printable ASCII without spaces");
  }
  return absl::OkStatus();
}

absl::Status CheckSessionCapacity(size_t open, size_t limit) {
  if (open < limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(open, " NCCL sessions are open on this loader rank (the limit is ",
                                                   limit, "); retry after a client ends, or use fewer clients"));
}

absl::Status CheckQueueCapacity(size_t queued, size_t limit) {
  if (queued < limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(queued, " transfers are queued on this NCCL session (the limit is ",
                                                   limit, "); receive them before asking for more"));
}

}  // namespace shardcast
