// The gRPC edge of shardcastd: absl::Status <-> grpc::Status (converted once, here), bearer-token
// checks, and deadlines for outgoing calls.
#ifndef SHARDCAST_SERVER_GRPC_UTIL_H_
#define SHARDCAST_SERVER_GRPC_UTIL_H_

#include <chrono>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/token_file.h"

namespace shardcast {

grpc::Status ToGrpcStatus(const absl::Status& s);
absl::Status FromGrpcStatus(const grpc::Status& s, const std::string& context = "");

// OK when no token is configured or the call carries `authorization: Bearer <token>`;
// UNAUTHENTICATED otherwise (the message says how to pass one).
grpc::Status CheckToken(const grpc::ServerContext& ctx, const std::string& token);

// Sets the deadline and the token on an outgoing call.
void PrepareClientContext(grpc::ClientContext* ctx, const std::string& token, std::chrono::milliseconds deadline);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_GRPC_UTIL_H_
