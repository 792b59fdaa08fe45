#include "server/shardcast_service.h"

#include <chrono>

#include "common/log.h"
#include "server/grpc_util.h"

namespace shardcast {

// One line per client session on rank 0: the manifest served (or a warning for the refusal).
grpc::Status ShardcastService::GetManifest(grpc::ServerContext* ctx, const v1::ShardRequest* req, v1::Manifest* reply) {
  RpcTimer timer(rpc_metrics_, RpcMethod::kGetManifest);
  return timer.End(ServeManifest(ctx, req, reply));
}

grpc::Status ShardcastService::ServeManifest(grpc::ServerContext* ctx, const v1::ShardRequest* req,
                                             v1::Manifest* reply) {
  const auto start = std::chrono::steady_clock::now();
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return LogIfError(*ctx, "GetManifest", s);
  absl::StatusOr<v1::Manifest> m = coordinator_->Manifest(*req);
  if (!m.ok()) return LogIfError(*ctx, "GetManifest", ToGrpcStatus(m.status()));
  *reply = *std::move(m);
  const int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  LogEvent(LogLevel::kInfo, "manifest served",
           {{"request_id", reply->request_id()}, {"tp_size", req->tp_size()}, {"tp_rank", req->tp_rank()},
            {"boxes", req->boxes_size()},
            {"shards", reply->shards_size()}, {"bytes", reply->total_bytes()}, {"lease", reply->lease_id()},
            {"peer", ctx->peer()}, {"ms", ms}});
  return grpc::Status::OK;
}

grpc::Status ShardcastService::GetStatus(grpc::ServerContext* ctx, const v1::StatusRequest*, v1::ServiceStatus* reply) {
  RpcTimer timer(rpc_metrics_, RpcMethod::kGetStatus);
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return timer.End(LogIfError(*ctx, "GetStatus", s));
  *reply = coordinator_->Status();
  return timer.End(grpc::Status::OK);
}

}  // namespace shardcast
