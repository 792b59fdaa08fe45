// The gRPC byte stream as a data plane (LoaderRank.Fetch): the loader rank's StreamSender cuts
// each shard into chunks of at most 1 MiB (the first chunk of a shard names it); the client's
// StreamReceiver writes each chunk into its destination after checking that the chunk names a
// requested shard and lies inside it (FitsIn: overflow-safe), and that every shard arrived whole.
// Works for any buffers the CPU can write; the sender reads the shards through copy_out.
#ifndef SHARDCAST_TRANSPORT_STREAM_PLANE_H_
#define SHARDCAST_TRANSPORT_STREAM_PLANE_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/support/sync_stream.h>

#include "proto/shardcast/v1/shardcast.pb.h"
#include "transport/data_plane.h"

namespace shardcast {

inline constexpr uint64_t kStreamChunkBytes = 1ull << 20;

// absl::Status of a gRPC status, prefixed by `what`; DEADLINE_EXCEEDED gets a hint.
absl::Status StreamCallStatus(const grpc::Status& s, const std::string& what);

class StreamSender final : public ShardSender {
 public:
  // `write` sends one chunk (false: the client stopped reading); `cancelled` is true once the
  // client has gone away.
  StreamSender(std::function<bool(const v1::FetchChunk&)> write, std::function<bool()> cancelled,
               uint64_t chunk_bytes = kStreamChunkBytes);
  absl::Status Send(const std::vector<ShardSource>& shards, DataPlaneClock::time_point deadline) override;

 private:
  absl::Status SendShard(const ShardSource& shard, DataPlaneClock::time_point deadline, std::string* buf);

  std::function<bool(const v1::FetchChunk&)> write_;
  std::function<bool()> cancelled_;
  uint64_t chunk_bytes_;
};

class StreamReceiver final : public ShardReceiver {
 public:
  using StartCall = std::function<std::unique_ptr<grpc::ClientReaderInterface<v1::FetchChunk>>()>;
  // Receive starts the Fetch call with `start_call` (its ClientContext carries the deadline) and
  // reads it; `cancel_call` cancels that call (ClientContext::TryCancel: also before it starts,
  // which can block while the peer's connection forms); `peer` names the loader rank in errors.
  StreamReceiver(StartCall start_call, std::function<void()> cancel_call, std::string peer);
  // Destinations must have distinct names. The deadline is the call's.
  absl::Status Receive(const std::vector<ShardDestination>& shards, DataPlaneClock::time_point deadline) override;
  void Cancel(absl::Status why) override;

 private:
  absl::Status ReadAll(const std::vector<ShardDestination>& shards, std::vector<uint64_t>* received);

  StartCall start_call_;
  std::unique_ptr<grpc::ClientReaderInterface<v1::FetchChunk>> reader_;
  std::function<void()> cancel_call_;
  std::string peer_;
  std::mutex mu_;
  absl::Status cancelled_;
};

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_STREAM_PLANE_H_
