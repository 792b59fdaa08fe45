// The gRPC adapter of rank 0's client-facing service (service Shardcast): token check, convert,
// call the Coordinator, convert back.
#ifndef SHARDCAST_SERVER_SHARDCAST_SERVICE_H_
#define SHARDCAST_SERVER_SHARDCAST_SERVICE_H_

#include <string>

#include "proto/shardcast/v1/shardcast.grpc.pb.h"
#include "server/coordinator.h"
#include "server/rpc_metrics.h"

namespace shardcast {

class ShardcastService final : public v1::Shardcast::Service {
 public:
  // `rpc_metrics` (may be null) times GetManifest and GetStatus; it must outlive the service.
  ShardcastService(Coordinator* coordinator, std::string token, RpcMetrics* rpc_metrics = nullptr)
      : coordinator_(coordinator), token_(std::move(token)), rpc_metrics_(rpc_metrics) {}
  grpc::Status GetManifest(grpc::ServerContext* ctx, const v1::ShardRequest* req, v1::Manifest* reply) override;
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest* req, v1::ServiceStatus* reply) override;

 private:
  grpc::Status ServeManifest(grpc::ServerContext* ctx, const v1::ShardRequest* req, v1::Manifest* reply);

  Coordinator* coordinator_;
  std::string token_;
  RpcMetrics* rpc_metrics_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_SHARDCAST_SERVICE_H_
