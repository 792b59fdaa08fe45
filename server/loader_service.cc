#include "server/loader_service.h"

#include <unistd.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "server/grpc_util.h"
#include "common/status_macros.h"
#include "proto/request_convert.h"
#include "server/proto_convert.h"
#include "server/transfer_log.h"
#include "transport/stream_plane.h"

namespace shardcast {

absl::Status LoaderService::CheckRequestId(const ShardRequestSpec& spec, const std::string& sent) const {
  SC_RETURN_IF_ERROR(ValidateShardRequest(spec));
  if (sent.empty()) return absl::InvalidArgumentError("Prepare: request_id is missing (rank 0 computes it)");
  const std::string own = loader_->RequestId(spec);
  if (sent == own) return absl::OkStatus();
  // Rank 0 and this rank disagree on what the request means: their defaults (--layout, --rule,
  // --prefix) differ. Serving it under either id would cache or serve the wrong shards.
  return absl::FailedPreconditionError(absl::StrCat(
      "request id mismatch: rank 0 sent ", sent.substr(0, 64), ", loader rank ", loader_->options().rank,
      " computes ", own, " for the same request (do all ranks run with the same --layout, --rule and --prefix?)"));
}

grpc::Status LoaderService::Prepare(grpc::ServerContext* ctx, const v1::PrepareRequest* req, v1::PrepareReply* reply) {
  RpcTimer timer(rpc_metrics_, RpcMethod::kPrepare);
  return timer.End(PrepareShards(ctx, req, reply));
}

grpc::Status LoaderService::PrepareShards(grpc::ServerContext* ctx, const v1::PrepareRequest* req,
                                          v1::PrepareReply* reply) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return s;
  const ShardRequestSpec spec = ShardRequestFromProto(req->request());
  if (absl::Status s = CheckRequestId(spec, req->request_id()); !s.ok()) return ToGrpcStatus(s);
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> prepared = loader_->Prepare(spec, req->lease_id());
  if (!prepared.ok()) return ToGrpcStatus(prepared.status());
  for (const PreparedShard& s : (*prepared)->shards) {
    if (s.owner == loader_->options().rank) ToProto(s, reply->add_shards());
  }
  return grpc::Status::OK;
}

grpc::Status LoaderService::GetRankState(grpc::ServerContext* ctx, const v1::StatusRequest*, v1::RankState* reply) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return s;
  if (sessions_.expire) sessions_.expire();
  ToProto(loader_->Snapshot(), reply);
  if (rpc_metrics_ != nullptr) ToProto(rpc_metrics_->Snapshot(), reply);
  reply->set_rank(loader_->options().rank);
  reply->set_host(host_);
  reply->set_pid(::getpid());
  return grpc::Status::OK;
}

grpc::Status LoaderService::Fetch(grpc::ServerContext* ctx, const v1::FetchRequest* req,
                                  grpc::ServerWriter<v1::FetchChunk>* writer) {
  RpcTimer timer(rpc_metrics_, RpcMethod::kFetch);
  return timer.End(LogIfError(*ctx, "Fetch", StreamShards(ctx, req, writer)));
}

grpc::Status LoaderService::StreamShards(grpc::ServerContext* ctx, const v1::FetchRequest* req,
                                         grpc::ServerWriter<v1::FetchChunk>* writer) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return s;
  std::shared_ptr<const PreparedRequest> prepared = loader_->Find(req->request_id());
  if (prepared == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("request ", req->request_id(), " is not prepared on rank ", loader_->options().rank,
                                     " (its lease expired?): ask rank 0 for the manifest again"));
  }
  const std::set<std::string> wanted(req->names().begin(), req->names().end());
  std::vector<ShardSource> sources;
  uint64_t bytes = 0;
  for (const PreparedShard& s : prepared->shards) {
    if (s.owner != loader_->options().rank) continue;
    if (!wanted.empty() && !wanted.count(s.name)) continue;
    sources.push_back(ShardSource{s.name, s.nbytes, s.data, [this, &s](uint64_t offset, uint64_t n, void* dst) {
                                    return loader_->CopyOut(s, offset, n, static_cast<char*>(dst));
                                  }});
    bytes += s.nbytes;
  }
  const TransferLog log(Transport::kStream, req->request_id(), ctx->peer(), bytes);
  TransferGuard transfer(loader_->transfers());
  // The transfer holds the request from here; its end (however it ends) ends the manifest's lease.
  struct Done {
    Loader* l;
    std::string lease;
    ~Done() { l->EndLease(lease); }
  } done{loader_, req->lease_id()};
  StreamSender sender([writer](const v1::FetchChunk& chunk) { return writer->Write(chunk); },
                      [ctx] { return ctx->IsCancelled(); });
  const absl::Status sent = sender.Send(sources, DataPlaneClock::time_point::max());
  log.Finish(sent);
  if (sent.ok()) loader_->transfers()->BytesSent(Transport::kStream, bytes);
  return ToGrpcStatus(sent);
}

grpc::Status LoaderService::OpenDeviceSession(grpc::ServerContext* ctx, const v1::OpenSessionRequest* req,
                                              v1::OpenSessionReply* reply) {
  RpcTimer timer(rpc_metrics_, RpcMethod::kOpenDeviceSession);
  return timer.End(LogIfError(*ctx, "OpenDeviceSession", OpenSession(ctx, req, reply)));
}

grpc::Status LoaderService::OpenSession(grpc::ServerContext* ctx, const v1::OpenSessionRequest* req,
                                        v1::OpenSessionReply* reply) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return s;
  if (!sessions_.open) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        "this shardcastd runs with --device cpu: no GPU data plane; receive into host memory (stream)");
  }
  std::shared_ptr<const PreparedRequest> prepared = loader_->Find(req->request_id());
  if (prepared == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("request ", req->request_id(), " is not prepared"));
  }
  absl::StatusOr<v1::OpenSessionReply> r = sessions_.open(prepared, *req, ctx->peer());
  if (!r.ok()) return ToGrpcStatus(r.status());
  // The transfer (NCCL job or CUDA IPC lease) now holds the request: the manifest's pin can go.
  if (!req->warm_up()) loader_->EndLease(req->lease_id());
  *reply = *std::move(r);
  return grpc::Status::OK;
}

grpc::Status LoaderService::ReleaseIpc(grpc::ServerContext* ctx, const v1::ReleaseIpcRequest* req, v1::ReleaseIpcReply*) {
  return LogIfError(*ctx, "ReleaseIpc", Release(ctx, req));
}

grpc::Status LoaderService::Release(grpc::ServerContext* ctx, const v1::ReleaseIpcRequest* req) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return s;
  if (!sessions_.release_ipc) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this shardcastd runs with --device cpu: no CUDA IPC");
  }
  return ToGrpcStatus(sessions_.release_ipc(req->lease()));
}

grpc::Status LoaderService::AwaitTransfer(grpc::ServerContext* ctx, const v1::AwaitTransferRequest* req,
                                          v1::AwaitTransferReply* reply) {
  return LogIfError(*ctx, "AwaitTransfer", Await(ctx, req, reply));
}

grpc::Status LoaderService::Await(grpc::ServerContext* ctx, const v1::AwaitTransferRequest* req,
                                  v1::AwaitTransferReply* reply) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return s;
  if (!sessions_.await_transfer) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this shardcastd runs with --device cpu: no NCCL transfers");
  }
  absl::Status sent;
  absl::Status waited =
      sessions_.await_transfer(req->session_id(), req->transfer_id(), [ctx] { return ctx->IsCancelled(); }, &sent);
  if (!waited.ok()) return ToGrpcStatus(waited);
  reply->set_code(static_cast<int32_t>(sent.code()));
  reply->set_message(std::string(sent.message()));
  return grpc::Status::OK;
}

grpc::Status LoaderService::EndLease(grpc::ServerContext* ctx, const v1::EndLeaseRequest* req, v1::EndLeaseReply*) {
  if (grpc::Status s = CheckToken(*ctx, token_); !s.ok()) return s;
  loader_->EndLease(req->lease_id());
  return grpc::Status::OK;
}

}  // namespace shardcast
