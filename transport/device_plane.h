// The GPU data planes behind transport/data_plane.h's interface. NCCL: NcclShardSender and
// NcclShardReceiver move a transfer's shards, in order, over a two-rank NcclPeerComm; while the
// receiver waits it also waits on the sender's reported result (AwaitTransfer on the loader
// rank), so a failed send ends the receive at once with the sender's reason instead of at the
// deadline. CUDA IPC (a client on the loader rank's own GPU) has no sending step: the loader
// rank exports its allocations (ExportIpcShards) under a lease and IpcShardReceiver maps them,
// copies device to device and unmaps. Buffers are device memory.
#ifndef SHARDCAST_TRANSPORT_DEVICE_PLANE_H_
#define SHARDCAST_TRANSPORT_DEVICE_PLANE_H_

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/shardcast/v1/shardcast.pb.h"
#include "transport/data_plane.h"
#include "transport/nccl_comm.h"

namespace shardcast {
class IpcMappings;  // transport/cuda_ipc.h
}  // namespace shardcast

namespace shardcast {

class NcclShardSender final : public ShardSender {
 public:
  explicit NcclShardSender(NcclPeerComm* comm) : comm_(comm) {}
  // Sends every shard's `data` (device memory) grouped.
  absl::Status Send(const std::vector<ShardSource>& shards, DataPlaneClock::time_point deadline) override;

 private:
  NcclPeerComm* comm_;
};

class NcclShardReceiver final : public ShardReceiver {
 public:
  // `await_sender` blocks until the sender's result of this transfer is known and returns it (OK
  // also when it cannot be known); `stop_await` makes it return (called once the receive is over).
  // Either may be empty: then only the deadline and Cancel end a receive that the sender abandoned.
  NcclShardReceiver(NcclPeerComm* comm, std::function<absl::Status()> await_sender, std::function<void()> stop_await)
      : comm_(comm), await_sender_(std::move(await_sender)), stop_await_(std::move(stop_await)) {}
  // Receives into the destinations in order; the sender must send the same sizes in that order.
  absl::Status Receive(const std::vector<ShardDestination>& shards, DataPlaneClock::time_point deadline) override;
  // Cancels the NCCL wait (the communicator is left broken: its state is unknown).
  void Cancel(absl::Status why) override;

 private:
  void WatchSender();

  NcclPeerComm* comm_;
  std::function<absl::Status()> await_sender_;
  std::function<void()> stop_await_;
  std::mutex mu_;
  bool receive_over_ = false;
  absl::Status cancelled_;
};

// One shard in an exported allocation: `allocation` is what cudaMalloc returned, `data` lies in it.
struct IpcSource {
  std::string name;
  const void* allocation = nullptr;
  const void* data = nullptr;
  uint64_t nbytes = 0;
  bool resident = false;  // the allocation lives until the service exits (IpcExport.resident)
};

// One handle per distinct allocation, each shard as (region, offset, nbytes), with whether it is
// resident. No lease is set.
absl::StatusOr<v1::IpcExport> ExportIpcShards(int device, const std::vector<IpcSource>& shards);

class IpcShardReceiver final : public ShardReceiver {
 public:
  // `peer` names the loader rank in errors. `mappings` (may be null: unmap everything after the
  // copy) keeps the export's resident allocations mapped for later receives.
  IpcShardReceiver(int device, v1::IpcExport exported, std::string peer, IpcMappings* mappings = nullptr)
      : device_(device), exported_(std::move(exported)), peer_(std::move(peer)), mappings_(mappings) {}
  // Checks that the export names exactly the destinations, with their sizes, then copies.
  absl::Status Receive(const std::vector<ShardDestination>& shards, DataPlaneClock::time_point deadline) override;
  // A device-local copy cannot be interrupted: a cancel is reported once it is over.
  void Cancel(absl::Status why) override;

 private:
  int device_;
  v1::IpcExport exported_;
  std::string peer_;
  IpcMappings* mappings_;
  std::mutex mu_;
  absl::Status cancelled_;
};

// What is left of `deadline` from now, at least 1 ms (NcclPeerComm and IpcCopy take durations).
std::chrono::milliseconds Remaining(DataPlaneClock::time_point deadline);

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_DEVICE_PLANE_H_
