#include "server/shardcast_service.h"

#include <chrono>

#include "common/dtype.h"
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

// ---- The index and bytes entries (ServedIndex) ----

grpc::Status ShardcastService::GetIndex(grpc::ServerContext* ctx, const v1::IndexRequest* req,
                                        v1::CheckpointIndex* reply) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return LogIfError(*ctx, "GetIndex", s);
  if (index_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this service serves no index");
  absl::StatusOr<IndexPage> page = index_->Page(req->start(), req->max_entries());
  if (!page.ok()) return LogIfError(*ctx, "GetIndex", ToGrpcStatus(page.status()));
  for (const TensorEntry* t : page->tensors) {
    v1::TensorIndexEntry* e = reply->add_tensors();
    e->set_key(t->key);
    e->set_dtype(std::string(DTypeName(t->dtype)));
    for (int64_t d : t->shape) e->add_shape(d);
  }
  for (const BytesEntry* b : page->bytes) {
    v1::BytesIndexEntry* e = reply->add_bytes();
    e->set_key(b->key);
    e->set_nbytes(b->location.length);
    e->set_compressed(!b->location.transforms.empty());
  }
  reply->set_next(page->next);
  reply->set_total(page->total);
  reply->set_prefix(index_->prefix());
  return grpc::Status::OK;
}

grpc::Status ShardcastService::ReadBytes(grpc::ServerContext* ctx, const v1::ReadBytesRequest* req,
                                         v1::ReadBytesReply* reply) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return LogIfError(*ctx, "ReadBytes", s);
  if (index_ == nullptr) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this service serves no bytes entries");
  const std::vector<std::string> keys(req->keys().begin(), req->keys().end());
  absl::StatusOr<BytesReply> r = index_->ReadBytes(keys);
  if (!r.ok()) return LogIfError(*ctx, "ReadBytes", ToGrpcStatus(r.status()));
  for (auto& [key, data] : r->values) {
    v1::BytesValue* v = reply->add_values();
    v->set_key(key);
    v->set_data(std::move(data));
  }
  for (const std::string& key : r->remaining) reply->add_remaining(key);
  return grpc::Status::OK;
}

}  // namespace shardcast
