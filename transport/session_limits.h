// Admission rules of the GPU data plane's NCCL sessions (pure, unit-tested without a GPU): a
// client-chosen session id is bounded and printable, and a loader rank keeps a bounded number of
// sessions (each owns a worker thread and a communicator), each with a bounded queue of transfers.
#ifndef SHARDCAST_TRANSPORT_SESSION_LIMITS_H_
#define SHARDCAST_TRANSPORT_SESSION_LIMITS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"

namespace shardcast {

constexpr size_t kMaxSessionIdBytes = 128;
constexpr size_t kMaxNcclSessions = 64;
// Transfers queued on one session and not yet sent: each pins its request and a transfer record.
constexpr size_t kMaxQueuedTransfers = 16;

// InvalidArgument naming session_id: empty, longer than kMaxSessionIdBytes, or not printable ASCII.
absl::Status CheckSessionId(const std::string& id);

// ResourceExhausted with the numbers when `open` sessions (idle ones already closed) leave no room
// for one more under `limit`.
absl::Status CheckSessionCapacity(size_t open, size_t limit);

// ResourceExhausted with the numbers when a session already has `queued` transfers waiting to be
// sent (a client that opens transfers faster than it receives them).
absl::Status CheckQueueCapacity(size_t queued, size_t limit = kMaxQueuedTransfers);

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_SESSION_LIMITS_H_
