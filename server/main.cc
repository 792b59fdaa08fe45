// shardcastd: the sidecar. `mpirun -np N shardcastd --checkpoint PATH ...`: flags -> options
// (flags.h) -> Server::Start -> Run until SIGTERM/SIGINT/SIGUSR1 or a lifecycle flag says to exit. Everything else lives in
// server.cc and below.
#include <malloc.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/version.h"
#include "server/bootstrap.h"
#include "server/flags.h"
#include "server/server.h"
#include "server/startup_timeline.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

// gRPC serves calls on many threads; glibc would give each its own malloc arena, and every arena
// keeps its high-water mark: a rank's RSS then climbs with the number of requests served long after
// the cache is full. A few arenas keep it flat. Rank addresses are host names: resolve them with
// the system resolver (gRPC's c-ares one can stall for seconds on names only /etc/hosts knows).
// Values the user set (MALLOC_ARENA_MAX, GRPC_DNS_RESOLVER) are kept.
void SetProcessDefaults() {
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 4);
  setenv("GRPC_DNS_RESOLVER", "native", /*overwrite=*/0);
}

int Usage(const absl::Status& s) {
  std::cerr << "shardcastd: error: " << s.message() << "\n";
  return 2;
}

// Starts the rank, serves until a stop signal or Run's own decision (--exit-when-idle, ...), and
// leaves: exit 0 after a clean drain; after a failure _Exit without MPI_Finalize (peers may be gone
// or waiting in MPI); rank 0 of a failed service aborts the job with status 3.
int Serve(const shardcast::ServerOptions& options, shardcast::LogOptions log, int* argc, char*** argv) {
  shardcast::StartupTimeline timeline;  // from the process's start
  std::unique_ptr<shardcast::Bootstrap> bootstrap = shardcast::NewMpiBootstrap(argc, argv);
  timeline.Mark("mpi init");
  log.prefix = absl::StrCat("shardcastd rank ", bootstrap->rank());
  log.rank = bootstrap->rank();
  shardcast::InitLogging(log);
  // SIGTERM / SIGINT / SIGUSR1 to a rank: drain and exit 0. (Debian's mpirun forwards SIGUSR1 to
  // every rank, Open MPI 4.1.6 on Ubuntu 24.04 does not; mpirun answers SIGTERM by killing the job.)
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGUSR1, OnSignal);
  auto server = shardcast::Server::Start(options, bootstrap.get(), &timeline);
  if (!server.ok()) {
    shardcast::LogError(server.status().message());
    std::_Exit(1);
  }
  const int rc = (*server)->Run(g_stop);
  const bool failed = (*server)->failed() || rc != 0;
  server->reset();
  // The service failed (--exit-on-failure): end the job with 3, so that mpirun reports it too.
  if (rc == shardcast::kExitServiceFailed) bootstrap->Abort(rc);
  if (failed) std::_Exit(rc ? rc : 1);
  bootstrap->Finalize();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  SetProcessDefaults();
  shardcast::ArgParser flags = shardcast::NewServerArgParser();
  absl::Status parsed = flags.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (flags.help_requested()) {
    std::cout << flags.Help();
    return 0;
  }
  if (!parsed.ok()) return Usage(parsed);
  if (flags.GetSwitch("version")) {
    std::cout << "shardcastd " << shardcast::kVersion << "\n";
    return 0;
  }
  absl::StatusOr<shardcast::LogLevel> log_level = shardcast::LogLevelFromFlags(flags);
  if (!log_level.ok()) return Usage(log_level.status());
  absl::StatusOr<shardcast::LogFormat> log_format = shardcast::LogFormatFromFlags(flags);
  if (!log_format.ok()) return Usage(log_format.status());
  shardcast::LogOptions log;
  log.level = *log_level;
  log.format = *log_format;
  shardcast::InitLogging(log);
  absl::StatusOr<shardcast::ServerOptions> options = shardcast::ServerOptionsFromFlags(flags);
  if (!options.ok()) return Usage(options.status());
  // A loopback-only service keeps MPI's start-up transport off the network too: Open MPI's TCP
  // BTL listens on every interface, and other network BTLs (e.g. libfabric's) on the node's
  // address; shared memory is all a single node needs. A value the user set is kept.
  absl::StatusOr<bool> loopback = shardcast::LoopbackOnly(*options);
  if (!loopback.ok()) return Usage(loopback.status());
  if (*loopback) setenv("OMPI_MCA_btl", "self,vader", /*overwrite=*/0);
  return Serve(*options, log, &argc, &argv);
}
