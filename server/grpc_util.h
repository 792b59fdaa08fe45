// The gRPC edge of shardcastd: absl::Status <-> grpc::Status (converted once, here), bearer-token
// checks, and deadlines for outgoing calls.
#ifndef SHARDCAST_SERVER_GRPC_UTIL_H_
#define SHARDCAST_SERVER_GRPC_UTIL_H_

#include <chrono>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/token_file.h"

namespace shardcast {

grpc::Status ToGrpcStatus(const absl::Status& s);
absl::Status FromGrpcStatus(const grpc::Status& s, const std::string& context = "");

// OK when no token is configured or the call carries `authorization: Bearer <token>`;
// UNAUTHENTICATED otherwise (the message says how to pass one).
grpc::Status CheckToken(const grpc::ServerContext& ctx, const std::string& token);

// Returns `s`; when it is an error, first logs one warning line: the call, the status code's name,
// the client's address (`ctx.peer()`) and the message (cut to 500 bytes).
grpc::Status LogIfError(const grpc::ServerContext& ctx, absl::string_view call, grpc::Status s);

// Sets the deadline and the token on an outgoing call.
void PrepareClientContext(grpc::ClientContext* ctx, const std::string& token, std::chrono::milliseconds deadline);

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_GRPC_UTIL_H_
