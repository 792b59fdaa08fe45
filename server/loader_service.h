// The gRPC adapter of one loader rank (service LoaderRank): Prepare and GetRankState for rank 0,
// Fetch (byte stream: transport/stream_plane), OpenDeviceSession, ReleaseIpc and AwaitTransfer
// (GPU data plane) for clients. Each method checks the token, converts, calls the Loader core and
// converts back; Prepare also checks that rank 0's request id is the one this rank computes.
#ifndef SHARDCAST_SERVER_LOADER_SERVICE_H_
#define SHARDCAST_SERVER_LOADER_SERVICE_H_

#include <chrono>
#include <functional>
#include <string>

#include "proto/shardcast/v1/shardcast.grpc.pb.h"
#include "server/loader.h"
#include "server/rpc_metrics.h"

namespace shardcast {

// The GPU data plane (server/device_sender.h), set by the server with --device cuda; unset
// (CPU service): OpenDeviceSession, ReleaseIpc and AwaitTransfer are UNIMPLEMENTED.
struct DeviceSessions {
  std::function<absl::StatusOr<v1::OpenSessionReply>(std::shared_ptr<const PreparedRequest> request,
                                                     const v1::OpenSessionRequest& open, const std::string& peer)>
      open;  // `peer`: the client's address, for the transfer's log line
  std::function<absl::Status(const std::string& lease)> release_ipc;
  // Sets *sent to the send's result once it has ended; returns the wait's status.
  std::function<absl::Status(const std::string& session_id, uint64_t transfer_id, const std::function<bool()>& cancelled,
                             absl::Status* sent)>
      await_transfer;
  // Ends what outlived its deadline (CUDA IPC leases a client never released); called on every
  // status poll, so that a vanished client's lease does not keep the rank busy until the next
  // IPC call.
  std::function<void()> expire;
};

class LoaderService final : public v1::LoaderRank::Service {
 public:
  // `rpc_metrics` (may be null: nothing counted) times Prepare, Fetch and OpenDeviceSession, and
  // its snapshot rides in GetRankState; it must outlive the service.
  LoaderService(Loader* loader, std::string token, std::string host, DeviceSessions sessions,
                RpcMetrics* rpc_metrics = nullptr)
      : loader_(loader),
        token_(std::move(token)),
        host_(std::move(host)),
        sessions_(std::move(sessions)),
        rpc_metrics_(rpc_metrics) {}

  grpc::Status Prepare(grpc::ServerContext* ctx, const v1::PrepareRequest* req, v1::PrepareReply* reply) override;
  grpc::Status GetRankState(grpc::ServerContext* ctx, const v1::StatusRequest* req, v1::RankState* reply) override;
  grpc::Status Fetch(grpc::ServerContext* ctx, const v1::FetchRequest* req,
                     grpc::ServerWriter<v1::FetchChunk>* writer) override;
  grpc::Status OpenDeviceSession(grpc::ServerContext* ctx, const v1::OpenSessionRequest* req,
                                 v1::OpenSessionReply* reply) override;
  grpc::Status ReleaseIpc(grpc::ServerContext* ctx, const v1::ReleaseIpcRequest* req, v1::ReleaseIpcReply* reply) override;
  grpc::Status AwaitTransfer(grpc::ServerContext* ctx, const v1::AwaitTransferRequest* req,
                             v1::AwaitTransferReply* reply) override;
  grpc::Status EndLease(grpc::ServerContext* ctx, const v1::EndLeaseRequest* req, v1::EndLeaseReply* reply) override;

 private:
  // OK when `sent` (rank 0's id of the request) is the id this rank computes for `spec`;
  // InvalidArgument for a request over its limits or without an id, FailedPrecondition naming
  // both ids on a mismatch (the ranks' defaults differ).
  absl::Status CheckRequestId(const ShardRequestSpec& spec, const std::string& sent) const;
  // The calls' bodies; the overrides above time them (and log the client-facing ones' errors).
  grpc::Status PrepareShards(grpc::ServerContext* ctx, const v1::PrepareRequest* req, v1::PrepareReply* reply);
  grpc::Status StreamShards(grpc::ServerContext* ctx, const v1::FetchRequest* req,
                            grpc::ServerWriter<v1::FetchChunk>* writer);
  grpc::Status OpenSession(grpc::ServerContext* ctx, const v1::OpenSessionRequest* req, v1::OpenSessionReply* reply);
  grpc::Status Release(grpc::ServerContext* ctx, const v1::ReleaseIpcRequest* req);
  grpc::Status Await(grpc::ServerContext* ctx, const v1::AwaitTransferRequest* req, v1::AwaitTransferReply* reply);

  Loader* loader_;
  std::string token_;
  std::string host_;
  DeviceSessions sessions_;
  RpcMetrics* rpc_metrics_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_LOADER_SERVICE_H_
