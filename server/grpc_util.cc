#include "server/grpc_util.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "transport/grpc_tls.h"

namespace shardcast {

grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  std::string msg(s.message());
  if (msg.size() > kMaxStatusMessageBytes) msg = msg.substr(0, kMaxStatusMessageBytes) + "... (truncated)";
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), msg);
}

absl::Status FromGrpcStatus(const grpc::Status& s, const std::string& context) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = context.empty() ? s.error_message() : absl::StrCat(context, ": ", s.error_message());
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), msg);
}

grpc::Status LogIfError(const grpc::ServerContext& ctx, absl::string_view call, grpc::Status s) {
  if (s.ok()) return s;
  const std::string& message = s.error_message();
  LogEvent(LogLevel::kWarning, "request refused",
           {{"call", call},
            {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code()))},
            {"peer", ctx.peer()},
            {"error", absl::string_view(message).substr(0, 500)}});
  return s;
}

namespace {

// Compares in a time that depends only on the lengths (a token's length is no secret, its bytes
// are): no early exit at the first differing byte for a timing probe to find.
bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

grpc::Status CheckToken(const grpc::ServerContext& ctx, const std::string& token) {
  if (token.empty()) return grpc::Status::OK;
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "this shardcastd requires a token: pass --token-file (or SHARDCAST_TOKEN_FILE) with the job's token");
  }
  if (!SameSecret(std::string_view(it->second.data(), it->second.size()), "Bearer " + token)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong token");
  }
  return grpc::Status::OK;
}

void PrepareClientContext(grpc::ClientContext* ctx, const std::string& token, std::chrono::milliseconds deadline) {
  ctx->set_deadline(std::chrono::system_clock::now() + deadline);
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace shardcast
