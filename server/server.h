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
#include "server/startup_timeline.h"
#include "transport/grpc_tls.h"

namespace shardcast {

struct ServerOptions {
  LoaderOptions loader;
  std::string device = "cpu";              // cpu | cuda
  std::string listen;                      // rank 0's client address; "" = <hostname>:0
  std::string data_host;                   // data-plane host; "" = listen's host if loopback, else <hostname>
  std::string metrics_listen;              // rank 0's HTTP /metrics address; "" = off
  std::string token;                       // "" = no token required
  std::chrono::milliseconds deadline{60000};  // every internal wait; also a manifest's lease and the drain bound
  std::optional<uint64_t> memory_budget;   // unset: 90% of the memory space's free bytes (per node-local rank on the host)
  std::string ready_file;                  // written by rank 0 when ready
  std::string nccl_library;                // libnccl to load for the NCCL data plane
  TlsConfig tls;                           // serving and rank-to-rank TLS (off by default)
  // Lifecycle (rank 0 decides; the other ranks follow its rank state's `exiting`):
  std::chrono::milliseconds exit_when_idle{0};   // exit 0 once idle this long after a manifest; 0: never
  uint64_t exit_after_clients = 0;               // exit 0 once this many manifests were served and all is idle; 0: never
  std::chrono::milliseconds exit_on_failure{60000};  // exit kExitServiceFailed this long after `failed`; 0: never
};

// shardcastd's exit statuses (documented in its --help).
inline constexpr int kExitOk = 0;             // stopped by a signal, or --exit-when-idle / --exit-after-clients
inline constexpr int kExitError = 1;          // start-up failed, this rank's load failed, or rank 0 vanished
inline constexpr int kExitUsage = 2;          // bad flags
inline constexpr int kExitServiceFailed = 3;  // rank 0: the service failed (after --exit-on-failure)

class Server {
 public:
  // Starts serving and loading (loading continues in the background). Errors name the flag or
  // the checkpoint problem. `timeline` (may be null; must outlive the server) gets each start-up
  // step; once loaded the rank logs it as one "start-up" line.
  static absl::StatusOr<std::unique_ptr<Server>> Start(ServerOptions options, Bootstrap* bootstrap,
                                                       StartupTimeline* timeline = nullptr);
  ~Server();

  // Blocks until `stop` becomes true, rank 0 decides to exit (--exit-when-idle,
  // --exit-after-clients, --exit-on-failure: the other ranks see it in rank 0's rank state), or
  // (non-zero ranks) rank 0 is gone. Then it drains: health NOT_SERVING and state "stopping"
  // (rank 0), new requests refused (UNAVAILABLE), transfers in flight given up to the deadline to
  // finish. Returns an exit status (kExit*).
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
  absl::Status StartMetrics(const ServerOptions& options);
  void StartLoading();
  void Drain();
  // Rank 0's look at the service, once per Run loop: the ready file (ready or failed) and whether
  // to exit now (the exit status), or not (nullopt).
  std::optional<int> WatchService();
  // Rank 0: whether --exit-when-idle / --exit-after-clients say to exit now.
  bool IdleExitDue();
  // The other ranks: whether rank 0 is gone (exit kExitError) or exiting (follow it).
  std::optional<int> WatchRank0();
  void WriteReadyFile(RankState state, const std::string& reason);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_SERVER_H_
