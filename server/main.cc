// shardcastd: the sidecar. `mpirun -np N shardcastd --checkpoint PATH ...`: flags -> options ->
// Server::Start -> Run until SIGTERM/SIGINT. Everything else lives in server.cc and below.
#include <malloc.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/args.h"
#include "common/log.h"
#include "server/bootstrap.h"
#include "server/grpc_util.h"
#include "server/listen_address.h"
#include "server/server.h"
#include "transport/grpc_tls.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv) {
  // gRPC serves calls on many threads; glibc would give each its own malloc arena, and every arena
  // keeps its high-water mark: a rank's RSS then climbs with the number of requests served long
  // after the cache is full. A few arenas keep it flat. MALLOC_ARENA_MAX, if set, wins.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 4);
  // Rank addresses are host names: resolve them with the system resolver (gRPC's c-ares one can
  // stall for seconds on names only /etc/hosts knows). A value the user set is kept.
  setenv("GRPC_DNS_RESOLVER", "native", /*overwrite=*/0);
  using shardcast::ArgParser;
  ArgParser p("shardcastd",
              "mpirun -np N shardcastd --checkpoint PATH [--prefix P] [--layout NAME|FILE] [--rule P=R ...]\n"
              "       [--listen HOST:PORT] [--data-host HOST] [--token-file F] [--device cuda|cpu] [--memory-budget BYTES]\n"
              "       [--deadline SECONDS] [--ready-file F] [--nccl-lib PATH] [--tls-cert F --tls-key F [--tls-ca F]]",
              "The shardcast sidecar: loader ranks read the selected part of a DCP checkpoint once, keep it in\n"
              "GPU (or host) memory, and serve any TP rank's shards: gRPC for control, NCCL (or a gRPC byte\n"
              "stream) for data. Rank 0 prints its address and writes --ready-file when every rank is ready.\n"
              "Start mpirun with '--mca orte_abort_on_non_zero_status 0' so that rank 0 outlives a dead rank\n"
              "and reports 'failed' instead of vanishing.");
  p.AddFlag("checkpoint", "PATH", "DCP folder or Megatron save folder");
  p.AddFlag("iteration", "N", "Megatron iteration to open instead of the latest");
  p.AddFlag("prefix", "P", "hold only keys starting with P (e.g. model.vision_model.)");
  p.AddFlag("layout", "NAME|FILE", "default layout of requests", "megatron");
  p.AddFlag("rule", "PATTERN=RULE", "default extra rule", "", true);
  p.AddFlag("listen", "HOST:PORT", "rank 0's address for clients (binds exactly HOST)", "<hostname>:0 (ephemeral)");
  p.AddFlag("data-host", "HOST", "host every loader rank's data-plane port binds (ephemeral port)",
            "--listen's host if loopback, else the node's host name");
  p.AddFlag("token-file", "F", "require this token on every call (see docs: generating a job token)");
  p.AddFlag("device", "cuda|cpu", "where tensors and shards live", "cuda");
  p.AddFlag("memory-budget", "BYTES", "per rank: tensors + cached requests (shards and their host bytes), e.g. 40GiB",
            "90% of free memory (GPU; host: MemAvailable / ranks on the node)");
  p.AddFlag("max-cached-requests", "N", "prepared requests a rank keeps at once", "1024");
  p.AddFlag("deadline", "SECONDS", "deadline of every internal wait (RPCs, NCCL)", "60");
  p.AddFlag("ready-file", "F", "rank 0 writes {address, pid, world_size} here when ready");
  p.AddFlag("nccl-lib", "PATH", "libnccl.so.2 to use (the training processes' own); or SHARDCAST_NCCL_LIBRARY");
  p.AddFlag("read-threads", "N", "parallel reads per rank", "8");
  p.AddSwitch("no-verify-storage-crc", "do not check each record's stored CRC-32 while loading");
  p.AddFlag("tls-cert", "F", "serve TLS with this PEM certificate (it must name every rank's host)");
  p.AddFlag("tls-key", "F", "the certificate's PEM private key");
  p.AddFlag("tls-ca", "F", "CA the ranks trust for each other (default: the certificate itself)");
  p.AddFlag("tls-server-name", "NAME", "name to check in the certificate instead of each host's");
  p.AddFlag("log-level", "debug|info|warning|error|off", "threshold of the log on stderr",
            "$SHARDCAST_LOG_LEVEL, else info");
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::Status s = p.Parse(args);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  auto usage = [](const std::string& m) {
    std::cerr << "shardcastd: error: " << m << "\n";
    return 2;
  };
  if (!s.ok()) return usage(std::string(s.message()));
  absl::StatusOr<shardcast::LogLevel> log_level = shardcast::LogLevelFromFlagOrEnv(p.Has("log-level") ? p.Get("log-level") : "");
  if (!log_level.ok()) return usage(std::string(log_level.status().message()));
  shardcast::InitLogging({"shardcastd", *log_level});
  if (!p.Has("checkpoint")) return usage("--checkpoint is required");

  shardcast::ServerOptions o;
  o.loader.checkpoint = p.Get("checkpoint");
  auto iter = p.GetOptionalInt("iteration");
  if (!iter.ok()) return usage(std::string(iter.status().message()));
  o.loader.iteration = *iter;
  o.loader.prefix = p.Get("prefix");
  o.loader.layout = p.Get("layout");
  o.loader.rules = p.GetAll("rule");
  o.device = p.Get("device");
  if (p.Has("listen")) o.listen = p.Get("listen");
  if (p.Has("data-host")) o.data_host = p.Get("data-host");
  if (p.Has("memory-budget")) {
    auto b = p.GetBytes("memory-budget");
    if (!b.ok()) return usage(std::string(b.status().message()));
    o.memory_budget = *b;
  }
  auto max_cached = p.GetInt("max-cached-requests");
  if (!max_cached.ok() || *max_cached < 1) return usage("--max-cached-requests expects a positive number");
  o.loader.max_cached_requests = static_cast<size_t>(*max_cached);
  auto deadline = p.GetInt("deadline");
  auto threads = p.GetInt("read-threads");
  if (!deadline.ok() || *deadline <= 0) return usage("--deadline expects a positive number of seconds");
  if (!threads.ok()) return usage(std::string(threads.status().message()));
  o.deadline = std::chrono::seconds(*deadline);
  o.loader.read_threads = static_cast<int>(*threads);
  o.loader.verify_storage_crc = !p.GetSwitch("no-verify-storage-crc");
  o.ready_file = p.Get("ready-file");
  o.nccl_library = p.Get("nccl-lib");
  if (p.Has("token-file")) {
    auto t = shardcast::ReadTokenFile(p.Get("token-file"));
    if (!t.ok()) return usage(std::string(t.status().message()));
    o.token = *t;
  }
  auto tls = shardcast::LoadTlsConfig(p.Get("tls-cert"), p.Get("tls-key"), p.Get("tls-ca"), p.Get("tls-server-name"));
  if (!tls.ok()) return usage(std::string(tls.status().message()));
  o.tls = *tls;

  // A loopback-only service keeps MPI's start-up transport off the network too: Open MPI's TCP
  // BTL listens on every interface, and other network BTLs (e.g. libfabric's) on the node's
  // address; shared memory is all a single node needs. A value the user set (OMPI_MCA_btl,
  // --mca btl) is kept.
  {
    auto listen = shardcast::SplitHostPort(o.listen.empty() ? "x:0" : o.listen, "--listen");
    if (!listen.ok()) return usage(std::string(listen.status().message()));
    if (!o.listen.empty() && shardcast::IsLoopbackHost(shardcast::DataPlaneHost(o.data_host, listen->host, ""))) {
      setenv("OMPI_MCA_btl", "self,vader", /*overwrite=*/0);
    }
  }
  std::unique_ptr<shardcast::Bootstrap> bootstrap = shardcast::NewMpiBootstrap(&argc, &argv);
  shardcast::InitLogging({absl::StrCat("shardcastd rank ", bootstrap->rank()), *log_level});
  // SIGTERM / SIGINT to a rank, or SIGUSR1 to mpirun (which forwards it to every rank): drain and
  // exit 0. (mpirun itself answers SIGTERM by killing the job and exiting 1.)
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGUSR1, OnSignal);
  absl::StatusOr<std::unique_ptr<shardcast::Server>> server = shardcast::Server::Start(o, bootstrap.get());
  if (!server.ok()) {
    shardcast::LogError(server.status().message());
    std::_Exit(1);  // peers may be waiting in MPI: do not finalize
  }
  const int rc = (*server)->Run(g_stop);
  const bool failed = (*server)->failed() || rc != 0;
  server->reset();
  if (failed) std::_Exit(rc ? rc : 1);
  bootstrap->Finalize();
  return 0;
}
