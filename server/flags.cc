#include "server/flags.h"

#include <chrono>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/grpc_util.h"
#include "server/listen_address.h"
#include "transport/grpc_tls.h"

namespace shardcast {
namespace {

constexpr char kUsage[] =
    "mpirun -np N shardcastd --checkpoint PATH [--prefix P] [--layout NAME|FILE] [--rule P=R ...]\n"
    "       [--listen HOST:PORT] [--data-host HOST] [--token-file F] [--device cuda|cpu] [--memory-budget BYTES]\n"
    "       [--deadline SECONDS] [--ready-file F] [--nccl-lib PATH] [--tls-cert F --tls-key F [--tls-ca F]]\n"
    "       [--exit-when-idle SECONDS] [--exit-after-clients N] [--exit-on-failure SECONDS]";

constexpr char kDescription[] =
    "The shardcast sidecar: loader ranks read the selected part of a DCP checkpoint once, keep it in\n"
    "GPU (or host) memory, and serve any TP rank's shards: gRPC for control, NCCL (or a gRPC byte\n"
    "stream) for data. Rank 0 prints its address and writes --ready-file when every rank is ready.\n"
    "Start mpirun with '--mca orte_abort_on_non_zero_status 0' so that rank 0 outlives a dead rank\n"
    "and reports 'failed' instead of vanishing.\n"
    "\n"
    "Exit statuses: 0 stopped by SIGTERM/SIGINT/SIGUSR1 (drained), or by --exit-when-idle /\n"
    "--exit-after-clients; 1 start-up failed, this rank's load failed, or rank 0 vanished; 2 bad flags;\n"
    "3 (rank 0) the service failed and --exit-on-failure passed (the ready file holds the reason).";

void AddCheckpointFlags(ArgParser& p) {
  p.AddFlag("checkpoint", "PATH", "DCP folder, Megatron save folder, safetensors folder (single file or sharded index) or .safetensors file");
  p.AddFlag("iteration", "N", "Megatron iteration to open instead of the latest");
  p.AddFlag("prefix", "P", "hold only keys starting with P (e.g. model.vision_model.)");
  p.AddFlag("layout", "NAME|FILE", "default layout of requests", "megatron");
  p.AddFlag("rule", "PATTERN=RULE", "default extra rule", "", true);
  p.AddFlag("read-threads", "N", "parallel reads per rank", "8");
  p.AddSwitch("no-verify-storage-crc", "do not check each record's stored CRC-32 while loading");
}

void AddServiceFlags(ArgParser& p) {
  p.AddFlag("listen", "HOST:PORT", "rank 0's address for clients (binds exactly HOST)", "<hostname>:0 (ephemeral)");
  p.AddFlag("data-host", "HOST", "host every loader rank's data-plane port binds (ephemeral port)",
            "--listen's host if loopback, else the node's host name");
  p.AddFlag("metrics-listen", "HOST:PORT",
            "rank 0 serves Prometheus metrics of every rank at http://HOST:PORT/metrics (plain HTTP, no token: "
            "bind a private address)",
            "off");
  p.AddFlag("token-file", "F", "require this token on every call (see docs: generating a job token)");
  p.AddFlag("device", "cuda|cpu", "where tensors and shards live", "cuda");
  p.AddFlag("memory-budget", "BYTES", "per rank: tensors + cached requests (shards and their host bytes), e.g. 40GiB",
            "90% of free memory (GPU; host: MemAvailable / ranks on the node)");
  p.AddFlag("max-cached-requests", "N", "prepared requests a rank keeps at once", "1024");
  p.AddFlag("deadline", "SECONDS", "deadline of every internal wait (RPCs, NCCL)", "60");
  p.AddFlag("ready-file", "F",
            "rank 0 writes {state: ready, address, pid, world_size} here when ready; {state: failed, reason, ...} "
            "when the service failed");
  p.AddFlag("nccl-lib", "PATH", "libnccl.so.2 to use (the training processes' own); or SHARDCAST_NCCL_LIBRARY");
  p.AddFlag("tls-cert", "F", "serve TLS with this PEM certificate (it must name every rank's host)");
  p.AddFlag("tls-key", "F", "the certificate's PEM private key");
  p.AddFlag("tls-ca", "F", "CA the ranks trust for each other (default: the certificate itself)");
  p.AddFlag("tls-server-name", "NAME", "name to check in the certificate instead of each host's");
  p.AddFlag("log-level", "debug|info|warning|error|off", "threshold of the log on stderr",
            "$SHARDCAST_LOG_LEVEL, else info");
  p.AddFlag("log-format", "text|json", "log lines as text, or one JSON object per line (ts, level, rank, msg, fields)",
            "$SHARDCAST_LOG_FORMAT, else text");
}

absl::Status ReadCheckpointFlags(const ArgParser& p, LoaderOptions& o) {
  if (!p.Has("checkpoint")) return absl::InvalidArgumentError("--checkpoint is required");
  o.checkpoint = p.Get("checkpoint");
  SC_ASSIGN_OR_RETURN(o.iteration, p.GetOptionalInt("iteration"));
  o.prefix = p.Get("prefix");
  o.layout = p.Get("layout");
  o.rules = p.GetAll("rule");
  SC_ASSIGN_OR_RETURN(int64_t threads, p.GetInt("read-threads"));
  if (threads < 1 || threads > 1024) return absl::InvalidArgumentError("--read-threads expects 1..1024");
  o.read_threads = static_cast<int>(threads);
  o.verify_storage_crc = !p.GetSwitch("no-verify-storage-crc");
  return absl::OkStatus();
}

absl::Status ReadLimitFlags(const ArgParser& p, ServerOptions& o) {
  if (p.Has("memory-budget")) {
    SC_ASSIGN_OR_RETURN(o.memory_budget, p.GetBytes("memory-budget"));
  }
  auto max_cached = p.GetInt("max-cached-requests");
  if (!max_cached.ok() || *max_cached < 1) {
    return absl::InvalidArgumentError("--max-cached-requests expects a positive number");
  }
  o.loader.max_cached_requests = static_cast<size_t>(*max_cached);
  auto deadline = p.GetInt("deadline");
  if (!deadline.ok() || *deadline <= 0) {
    return absl::InvalidArgumentError("--deadline expects a positive number of seconds");
  }
  o.deadline = std::chrono::seconds(*deadline);
  return absl::OkStatus();
}

void AddLifecycleFlags(ArgParser& p) {
  p.AddFlag("exit-when-idle", "SECONDS",
            "exit 0 once every rank has been idle this long (no client active, no manifest being prepared, no "
            "lease pinned), after at least one manifest was served; 0: never",
            "0");
  p.AddFlag("exit-after-clients", "N", "exit 0 once N manifests were served and every rank is idle; 0: never", "0");
  p.AddFlag("exit-on-failure", "SECONDS",
            "once the service has failed, keep answering status this long, then exit 3; 0: never", "60");
}

absl::StatusOr<std::chrono::milliseconds> NonNegativeSeconds(const ArgParser& p, const std::string& flag) {
  auto v = p.GetInt(flag);
  if (!v.ok() || *v < 0 || *v > 365 * 86400) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " expects seconds, 0..31536000"));
  }
  return std::chrono::milliseconds(*v * 1000);
}

absl::Status ReadLifecycleFlags(const ArgParser& p, ServerOptions& o) {
  SC_ASSIGN_OR_RETURN(o.exit_when_idle, NonNegativeSeconds(p, "exit-when-idle"));
  SC_ASSIGN_OR_RETURN(o.exit_on_failure, NonNegativeSeconds(p, "exit-on-failure"));
  auto clients = p.GetInt("exit-after-clients");
  if (!clients.ok() || *clients < 0) return absl::InvalidArgumentError("--exit-after-clients expects a count, 0 or more");
  o.exit_after_clients = static_cast<uint64_t>(*clients);
  return absl::OkStatus();
}

absl::Status ReadServiceFlags(const ArgParser& p, ServerOptions& o) {
  o.device = p.Get("device");
  if (p.Has("listen")) o.listen = p.Get("listen");
  if (p.Has("data-host")) o.data_host = p.Get("data-host");
  if (p.Has("metrics-listen")) {
    o.metrics_listen = p.Get("metrics-listen");
    SC_RETURN_IF_ERROR(SplitHostPort(o.metrics_listen, "--metrics-listen").status());
  }
  o.ready_file = p.Get("ready-file");
  o.nccl_library = p.Get("nccl-lib");
  if (p.Has("token-file")) {
    SC_ASSIGN_OR_RETURN(o.token, ReadTokenFile(p.Get("token-file")));
  }
  SC_ASSIGN_OR_RETURN(o.tls, LoadTlsConfig(p.Get("tls-cert"), p.Get("tls-key"), p.Get("tls-ca"),
                                           p.Get("tls-server-name")));
  return absl::OkStatus();
}

}  // namespace

ArgParser NewServerArgParser() {
  ArgParser p("shardcastd", kUsage, kDescription);
  AddCheckpointFlags(p);
  AddServiceFlags(p);
  AddLifecycleFlags(p);
  p.AddSwitch("version", "print the version and exit");
  return p;
}

absl::StatusOr<ServerOptions> ServerOptionsFromFlags(const ArgParser& flags) {
  ServerOptions o;
  SC_RETURN_IF_ERROR(ReadCheckpointFlags(flags, o.loader));
  SC_RETURN_IF_ERROR(ReadLimitFlags(flags, o));
  SC_RETURN_IF_ERROR(ReadServiceFlags(flags, o));
  SC_RETURN_IF_ERROR(ReadLifecycleFlags(flags, o));
  return o;
}

absl::StatusOr<LogLevel> LogLevelFromFlags(const ArgParser& flags) {
  return LogLevelFromFlagOrEnv(flags.Has("log-level") ? flags.Get("log-level") : "");
}

absl::StatusOr<LogFormat> LogFormatFromFlags(const ArgParser& flags) {
  return LogFormatFromFlagOrEnv(flags.Has("log-format") ? flags.Get("log-format") : "");
}

absl::StatusOr<bool> LoopbackOnly(const ServerOptions& options) {
  if (options.listen.empty()) return false;
  SC_ASSIGN_OR_RETURN(HostPort listen, SplitHostPort(options.listen, "--listen"));
  return IsLoopbackHost(DataPlaneHost(options.data_host, listen.host, ""));
}

}  // namespace shardcast
