// The gRPC adapter of rank 0's client-facing service (service Shardcast): token check, convert,
// call the Coordinator (manifests, status) or the ServedIndex (index pages, bytes entries),
// convert back.
#ifndef SHARDCAST_SERVER_SHARDCAST_SERVICE_H_
#define SHARDCAST_SERVER_SHARDCAST_SERVICE_H_

#include <string>

#include "proto/shardcast/v1/shardcast.grpc.pb.h"
#include "server/coordinator.h"
#include "server/rpc_metrics.h"
#include "server/served_index.h"

namespace shardcast {

class ShardcastService final : public v1::Shardcast::Service {
 public:
  // `index` may be null: GetIndex and ReadBytes then answer UNIMPLEMENTED. `rpc_metrics` (may be
  // null) times GetManifest and GetStatus; both must outlive the service.
  ShardcastService(Coordinator* coordinator, std::string token, ServedIndex* index = nullptr,
                   RpcMetrics* rpc_metrics = nullptr)
      : coordinator_(coordinator), token_(std::move(token)), index_(index), rpc_metrics_(rpc_metrics) {}
  grpc::Status GetManifest(grpc::ServerContext* ctx, const v1::ShardRequest* req, v1::Manifest* reply) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* req, v1::ServiceStatus* reply) override;
  grpc::Status GetIndex(grpc::ServerContext* ctx, const v1::IndexRequest* req, v1::CheckpointIndex* reply) override;
  grpc::Status ReadBytes(grpc::ServerContext* ctx, const v1::ReadBytesRequest* req, v1::ReadBytesReply* reply) override;

 private:
  grpc::Status ServeManifest(grpc::ServerContext* ctx, const v1::ShardRequest* req, v1::Manifest* reply);

  Coordinator* coordinator_;
  std::string token_;
  ServedIndex* index_;
  RpcMetrics* rpc_metrics_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_SHARDCAST_SERVICE_H_
