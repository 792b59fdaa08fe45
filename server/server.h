// Server: one loader rank of shardcastd, wired together. Every rank serves LoaderRank (data plane
// and rank-0 calls) on an ephemeral port of the data-plane host (--data-host); rank 0 also serves
// Shardcast + grpc.health.v1 on --listen and runs the Coordinator. Each port binds exactly its host.
#ifndef SHARDCAST_SERVER_SERVER_H_
#define SHARDCAST_SERVER_SERVER_H_

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/bootstrap.h"
#include "server/loader.h"
#include "transport/grpc_tls.h"

namespace shardcast {

struct ServerOptions {
  LoaderOptions loader;
  std::string device = "cpu";              // cpu | cuda
  std::string listen;                      // rank 0's client address; "" = <hostname>:0
  std::string data_host;                   // data-plane host; "" = listen's host if loopback, else <hostname>
  std::string token;                       // "" = no token required
  std::chrono::milliseconds deadline{60000};  // every internal wait; also a manifest's lease and the drain bound
  std::optional<uint64_t> memory_budget;   // unset: 90% of the memory space's free bytes (per node-local rank on the host)
  std::string ready_file;                  // written by rank 0 when ready
  std::string nccl_library;                // libnccl to load for the NCCL data plane
  TlsConfig tls;                           // serving and rank-to-rank TLS (off by default)
};

class Server {
 public:
  // Starts serving and loading (loading continues in the background). Errors name the flag or
  // the checkpoint problem.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options, Bootstrap* bootstrap);
  ~Server();

  // Blocks until `stop` becomes true, or (non-zero ranks) rank 0 is gone. On `stop` it drains:
  // health NOT_SERVING and state "stopping" (rank 0), new requests refused (UNAVAILABLE),
  // transfers in flight given up to the deadline to finish. Returns 0 for a clean stop.
  int Run(const std::atomic<bool>& stop);
  // The client address (rank 0) or the data-plane address (other ranks).
  std::string address() const;
  // Loading failed here, or (rank 0) the service failed: a peer may be gone, skip MPI_Finalize.
  bool failed() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  absl::Status CreateLoader(ServerOptions& options);
  absl::Status StartCoordinator(const ServerOptions& options, const std::string& listen);
  void StartLoading();
  void Drain();
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_SERVER_H_
