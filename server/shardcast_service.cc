#include "server/shardcast_service.h"

#include "server/grpc_util.h"

namespace shardcast {

grpc::Status ShardcastService::GetManifest(grpc::ServerContext* ctx, const v1::ShardRequest* req, v1::Manifest* reply) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return s;
  absl::StatusOr<v1::Manifest> m = coordinator_->Manifest(*req);
  if (!m.ok()) return ToGrpcStatus(m.status());
  *reply = *std::move(m);
  return grpc::Status::OK;
}

grpc::Status ShardcastService::GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest*, v1::ServiceStatus* reply) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return s;
  *reply = coordinator_->Status();
  return grpc::Status::OK;
}

}  // namespace shardcast
