// The data-plane interface: how one owner's shards move from a loader rank (ShardSender) to a
// client (ShardReceiver), whatever carries them. Implementations: the gRPC byte stream
// (transport/stream_plane.h), NCCL and CUDA IPC (transport/device_plane.h), and an in-process
// loopback pair (below) for tests. What does not depend on the transport stays with the client:
// matching destinations to the manifest before any byte moves, and the CRC32C after the receive.
//
// A receive covers one owner: its shards in the order the sender sends them, each with its
// destination. It ends by its deadline, by Cancel() (e.g. rank 0 marked the owner failed), or by
// the sender's error, which reaches the receiver with the sender's reason.
#ifndef SHARDCAST_TRANSPORT_DATA_PLANE_H_
#define SHARDCAST_TRANSPORT_DATA_PLANE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace shardcast {

using DataPlaneClock = std::chrono::steady_clock;

// offset + size <= capacity without wrap-around: every bounds check against a number a peer sent.
bool FitsIn(uint64_t offset, uint64_t size, uint64_t capacity);

// Where one shard's bytes go (host or device memory, as the transport needs).
struct ShardDestination {
  std::string name;
  void* data = nullptr;
  uint64_t nbytes = 0;
};

// One shard to send. `data` is where its bytes lie (device memory for NCCL); `copy_out` copies
// bytes [offset, offset + n) into host memory (the stream and the loopback use it).
struct ShardSource {
  std::string name;
  uint64_t nbytes = 0;
  const void* data = nullptr;
  std::function<absl::Status(uint64_t offset, uint64_t n, void* dst)> copy_out;
};

class ShardReceiver {
 public:
  virtual ~ShardReceiver() = default;
  // Receives every shard into its destination, in order, before `deadline`. On failure: the
  // sender's error when the sender failed, the reason given to Cancel(), or the transport's own.
  virtual absl::Status Receive(const std::vector<ShardDestination>& shards, DataPlaneClock::time_point deadline) = 0;
  // Makes a Receive that runs now (or later) return promptly with `why` (thread-safe).
  virtual void Cancel(absl::Status why) = 0;
};

class ShardSender {
 public:
  virtual ~ShardSender() = default;
  // Sends every shard, in order, before `deadline`. The result also reaches the receiver.
  virtual absl::Status Send(const std::vector<ShardSource>& shards, DataPlaneClock::time_point deadline) = 0;
};

// The in-process loopback pair: the sender copies each shard (copy_out) straight into the
// receiver's destinations. Send waits for the receiver's destinations; Receive waits for the
// sender's result and returns it. Either side's failure or cancellation ends both.
struct LoopbackPair {
  std::unique_ptr<ShardSender> sender;
  std::unique_ptr<ShardReceiver> receiver;
};
LoopbackPair MakeLoopbackPair();

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_DATA_PLANE_H_
