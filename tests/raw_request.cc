// raw_request: sends one ShardRequest, written in protobuf text format, straight to shardcastd's
// GetManifest, bypassing the client library's own checks, as a hostile client would. Prints
// "CODE_NAME: message" (or "OK: N shards") and exits with the gRPC status code. Test-only.
//
//   raw_request ADDR TOKEN_FILE|- 'tp_size: 2147483648 tp_rank: 0'
//   raw_request ADDR TOKEN_FILE|- @FILE     (the text read from FILE: requests beyond argv's limits)
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <iostream>
#include <string>

#include "absl/status/status.h"
#include "common/token_file.h"
#include "google/protobuf/text_format.h"
#include "proto/shardcast/v1/shardcast.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: raw_request ADDR TOKEN_FILE|- TEXT_PROTO\n";
    return 2;
  }
  setenv("GRPC_DNS_RESOLVER", "native", /*overwrite=*/0);  // as the client library does
  std::string text = argv[3];
  if (!text.empty() && text[0] == '@') {
    std::ifstream in(text.substr(1), std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  shardcast::v1::ShardRequest req;
  if (!google::protobuf::TextFormat::ParseFromString(text, &req)) {
    std::cerr << "raw_request: cannot parse the request\n";
    return 2;
  }
  auto stub = shardcast::v1::Shardcast::NewStub(grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  if (std::string(argv[2]) != "-") {
    absl::StatusOr<std::string> token = shardcast::ReadTokenFile(argv[2]);
    if (!token.ok()) {
      std::cerr << "raw_request: " << token.status() << "\n";
      return 2;
    }
    ctx.AddMetadata("authorization", "Bearer " + *token);
  }
  shardcast::v1::Manifest m;
  grpc::Status s = stub->GetManifest(&ctx, req, &m);
  if (s.ok()) {
    std::cout << "OK: " << m.shards_size() << " shards\n";
    return 0;
  }
  std::cout << absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())) << ": " << s.error_message()
            << "\n";
  return static_cast<int>(s.error_code());
}
