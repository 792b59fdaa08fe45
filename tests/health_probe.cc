// health_probe HOST:PORT: asks the standard gRPC health service (grpc.health.v1.Health/Check, the
// whole server) and prints SERVING / NOT_SERVING / UNKNOWN, or the call's error. Exit 0 when it
// got an answer, 1 otherwise. For tests (no grpc_health_probe or Python gRPC on the CI machine).
#include <chrono>
#include <iostream>
#include <memory>
#include <string>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: health_probe HOST:PORT\n";
    return 2;
  }
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  grpc::CompletionQueue cq;
  grpc::ByteBuffer request;  // HealthCheckRequest{service: ""}: no bytes
  grpc::Slice empty;
  request = grpc::ByteBuffer(&empty, 1);
  std::unique_ptr<grpc::ClientAsyncResponseReader<grpc::ByteBuffer>> call =
      stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  if (!status.ok()) {
    std::cout << "error " << status.error_code() << ": " << status.error_message() << std::endl;
    return 1;
  }
  std::string bytes;
  std::vector<grpc::Slice> slices;
  (void)response.Dump(&slices);
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // HealthCheckResponse{status = 1}: field 1, varint: 0x08 then the value.
  const int value = bytes.size() >= 2 && bytes[0] == 0x08 ? bytes[1] : 0;
  std::cout << (value == 1 ? "SERVING" : value == 2 ? "NOT_SERVING" : "UNKNOWN") << std::endl;
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return 0;
}
