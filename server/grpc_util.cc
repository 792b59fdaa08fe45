#include "server/grpc_util.h"

#include "absl/strings/str_cat.h"

namespace shardcast {

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  std::string msg(s.message());
  if (msg.size() > 16000) msg = msg.substr(0, 16000) + "... (truncated)";
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), msg);
}

absl::Status FromGrpcStatus(const grpc::Status& s, const std::string& context) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = context.empty() ? s.error_message() : absl::StrCat(context, ": ", s.error_message());
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), msg);
}

grpc::Status CheckToken(const grpc::ServerContext& ctx, const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this shardcastd requires a token: pass --token-file (or SHARDCAST_TOKEN_FILE) with the job's token");
  }
  if (std::string(it->second.data(), it->second.size()) != "Bearer " + token) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong token");
  }
  return grpc::Status::OK;
}

void PrepareClientContext(grpc::ClientContext* ctx, const std::string& token, std::chrono::milliseconds deadline) {
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace shardcast
