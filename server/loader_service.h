// The gRPC adapter of one loader rank (service LoaderRank): Prepare and GetRankState for rank 0,
// Fetch (byte stream) and OpenNcclSession (NCCL data plane) for clients. Each method checks the
// token, converts, calls the Loader core and converts back; nothing else.
#ifndef SHARDCAST_SERVER_LOADER_SERVICE_H_
#define SHARDCAST_SERVER_LOADER_SERVICE_H_

#include <chrono>
#include <functional>
#include <string>

#include "proto/shardcast/v1/shardcast.grpc.pb.h"
#include "server/loader.h"

namespace shardcast {

// Sends prepared shards over NCCL for one client session (see transport/nccl_session.h).
// Set by the server when NCCL is available; nullptr: OpenNcclSession is UNIMPLEMENTED.
using NcclSessionStarter = std::function<absl::StatusOr<v1::OpenSessionReply>(
    std::shared_ptr<const PreparedRequest> request, const v1::OpenSessionRequest& open)>;

class LoaderService final : public v1::LoaderRank::Service {
 public:
  LoaderService(Loader* loader, std::string token, std::string host, NcclSessionStarter nccl)
      : loader_(loader), token_(std::move(token)), host_(std::move(host)), nccl_(std::move(nccl)) {}

  grpc::Status Prepare(grpc::ServerContext* ctx, const v1::PrepareRequest* req, v1::PrepareReply* reply) override;
  grpc::Status GetRankState(grpc::ServerContext* ctx, const v1::StatusRequest* req, v1::RankState* reply) override;
  grpc::Status Fetch(grpc::ServerContext* ctx, const v1::FetchRequest* req,
                     grpc::ServerWriter<v1::FetchChunk>* writer) override;
  grpc::Status OpenNcclSession(grpc::ServerContext* ctx, const v1::OpenSessionRequest* req,
                               v1::OpenSessionReply* reply) override;

 private:
  Loader* loader_;
  std::string token_;
  std::string host_;
  NcclSessionStarter nccl_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_LOADER_SERVICE_H_
