#include "server/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <iostream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>

#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "server/cuda_memory_space.h"
#include "server/coordinator.h"
#include "server/device_sender.h"
#include "server/grpc_util.h"
#include "server/listen_address.h"
#include "server/loader_service.h"
#include "server/metrics_http.h"
#include "server/rpc_metrics.h"
#include "server/served_index.h"
#include "transport/grpc_tls.h"
#include "server/service_metrics.h"
#include "server/shardcast_service.h"

namespace shardcast {

namespace {

// The one "start-up" line: milliseconds from the process's start, and each step's.
void LogStartup(const StartupTimeline& timeline) {
  LogEvent(LogLevel::kInfo, "start-up", {{"ms", static_cast<int64_t>(timeline.total_ms())}, {"steps", timeline.Summary()}});
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  Bootstrap* bootstrap = nullptr;
  std::string host;
  RpcMetrics rpc_metrics;                   // before the services that record to it
  std::unique_ptr<Loader> loader;
  std::unique_ptr<DeviceSender> device_sender;
  std::unique_ptr<LoaderService> loader_service;
  std::unique_ptr<grpc::Server> rank_server;
  std::string rank_address;
  std::vector<std::string> rank_addresses;
  std::unique_ptr<Coordinator> coordinator;
  std::atomic<Coordinator*> coordinator_to_wake{nullptr};  // for the load thread, once the coordinator runs
  // Ranks other than 0 log their start-up line once both their load and Start are done (rank 0
  // once every rank is ready).
  std::atomic<int> startup_parts_done{0};
  void StartupPartDone() {
    if (++startup_parts_done == 2 && bootstrap->rank() != 0) LogStartup(*timeline);
  }
  std::unique_ptr<ServedIndex> index;  // rank 0: the checkpoint's index and bytes entries
  std::unique_ptr<ShardcastService> client_service;
  std::unique_ptr<grpc::Server> client_server;
  std::string client_address;
  std::unique_ptr<MetricsHttpServer> metrics_server;  // rank 0 with --metrics-listen
  std::thread load_thread;
  StartupTimeline own_timeline;              // when Start was given none
  StartupTimeline* timeline = &own_timeline;
  // Run's loop wakes when the coordinator's state changes (the ready file follows at once).
  std::mutex run_mu;
  std::condition_variable run_cv;
  bool state_changed = false;
  std::atomic<bool> load_done{false};
  std::atomic<bool> load_failed{false};
  // Run's watch (rank 0: the service; others: rank 0).
  bool ready_written = false, failure_written = false;
  std::optional<std::chrono::steady_clock::time_point> failed_since, idle_since;
  std::unique_ptr<v1::LoaderRank::Stub> rank0;
  std::chrono::steady_clock::time_point rank0_last_ok = std::chrono::steady_clock::now();
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  impl_->metrics_server.reset();  // its renders read the coordinator
  if (impl_->coordinator) impl_->coordinator->Stop();
  const auto soon = std::chrono::system_clock::now() + std::chrono::seconds(2);
  if (impl_->client_server) impl_->client_server->Shutdown(soon);
  if (impl_->rank_server) impl_->rank_server->Shutdown(soon);
  if (impl_->load_done.load()) {
    impl_->load_thread.join();
  } else if (impl_->load_thread.joinable()) {
    // Stopped while a read blocks (a hung file system): leave the load thread, and everything it
    // may still touch when the read returns (the loader, the flags, the bootstrap: all of Impl),
    // to the process's exit rather than wait for it.
    impl_->load_thread.detach();
    (void)impl_.release();
  }
}

std::string Server::address() const {
  return impl_->client_address.empty() ? impl_->rank_address : impl_->client_address;
}

bool Server::failed() const {
  return impl_->load_failed.load() || (impl_->coordinator && impl_->coordinator->state() == RankState::kFailed);
}

namespace {

// --memory-budget, or 90% of what the memory space has free (on the host, shared by the node's
// ranks). Printed, so that an operator sees the limit a RESOURCE_EXHAUSTED refers to.
absl::StatusOr<uint64_t> MemoryBudget(const ServerOptions& options, Bootstrap* bootstrap, MemorySpace* memory) {
  if (options.memory_budget) return *options.memory_budget;
  absl::StatusOr<uint64_t> free = memory->FreeBytes();
  if (!free.ok()) return absl::Status(free.status().code(), absl::StrCat("default --memory-budget: ", free.status().message()));
  const uint64_t sharing = memory->is_device() ? 1 : static_cast<uint64_t>(std::max(1, bootstrap->local_size()));
  const uint64_t budget = *free / 10 * 9 / sharing;
  std::cout << "shardcastd rank " << bootstrap->rank() << ": --memory-budget " << budget << " bytes (90% of "
            << *free << " bytes free on " << memory->name()
            << (sharing > 1 ? absl::StrCat(", shared by ", sharing, " ranks") : "") << ")" << std::endl;
  return budget;
}

// What one incoming message may be: every request is far smaller (a ShardRequest's strings are
// limited to 128 KiB; Fetch / OpenDeviceSession name at most the request's shards), and gRPC
// buffers a message whole before any check of ours runs. Replies (manifests) may be larger.
constexpr int kMaxIncomingMessageBytes = 4 << 20;
constexpr int kMaxOutgoingMessageBytes = 64 << 20;
// Threads gRPC's synchronous server may run handlers on, per port; beyond it calls wait.
constexpr int kMaxServerThreads = 512;

// True when `host` is not a loopback name but every address it resolves to is loopback (Debian
// and Ubuntu map the host name to 127.0.1.1 in /etc/hosts): a port bound there is reachable from
// this node only.
bool ResolvesOnlyToLoopback(const std::string& host) {
  if (IsLoopbackHost(host)) return false;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) return false;
  bool only_loopback = true;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      only_loopback &= (ntohl(reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr.s_addr) >> 24) == 127;
    } else if (a->ai_family == AF_INET6) {
      only_loopback &= IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
    }
  }
  freeaddrinfo(found);
  return only_loopback;
}

// How long a stopping service keeps answering (health: NOT_SERVING) before it closes its ports.
constexpr std::chrono::milliseconds kDrainLinger{2000};

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

// Binds exactly `address` (HOST:PORT, port 0 = ephemeral; never all interfaces unless HOST says
// so) and returns the server and the bound address (HOST:bound port, what peers are told).
absl::StatusOr<std::unique_ptr<grpc::Server>> Bind(const std::string& address, std::vector<grpc::Service*> services,
                                                   std::string* bound, bool health, const TlsConfig& tls) {
  SC_ASSIGN_OR_RETURN(const HostPort hp, SplitHostPort(address, "address"));
  if (health) grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort(address, ServerCredentials(tls), &port);
  b.SetMaxReceiveMessageSize(kMaxIncomingMessageBytes);
  b.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, kMaxMetadataBytes);  // an error's full list (grpc_tls.h)
  b.SetMaxSendMessageSize(kMaxOutgoingMessageBytes);
  grpc::ResourceQuota quota(absl::StrCat("shardcast ", address));
  quota.SetMaxThreads(kMaxServerThreads);
  b.SetResourceQuota(quota);
  for (grpc::Service* s : services) b.RegisterService(s);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, " (port in use, or ", hp.host,
                                               " is not an address of this machine?)"));
  }
  *bound = absl::StrCat(hp.host, ":", port);
  return server;
}

absl::StatusOr<std::unique_ptr<MemorySpace>> NewMemorySpace(const std::string& device, int local_rank) {
  if (device == "cpu") return NewHostMemorySpace();
  if (device == "cuda") return NewCudaMemorySpace(local_rank);
  return absl::InvalidArgumentError(absl::StrCat("--device must be cpu or cuda, not '", device, "'"));
}

// A warning when a host to bind resolves only to loopback: peers on other nodes could not reach it.
void WarnIfOnlyLoopback(const std::vector<std::string>& hosts) {
  for (const std::string& h : hosts) {
    if (ResolvesOnlyToLoopback(h)) {
      LogWarning("'", h, "' resolves only to loopback addresses (/etc/hosts?): clients on other nodes cannot reach it; "
                 "pass --listen ADDRESS:PORT (and --data-host ADDRESS) with this node's network address");
      return;
    }
  }
}

// The GPU data plane's entry points for the loader service (CUDA only).
DeviceSessions SessionsOf(DeviceSender* s) {
  DeviceSessions sessions;
  sessions.open = [s](std::shared_ptr<const PreparedRequest> req, const v1::OpenSessionRequest& open,
                       const std::string& peer) {
    return s->Open(std::move(req), open, peer);
  };
  sessions.release_ipc = [s](const std::string& lease) { return s->ReleaseIpc(lease); };
  sessions.expire = [s] { s->ExpireIdle(); };
  sessions.await_transfer = [s](const std::string& session, uint64_t transfer, const std::function<bool()>& cancelled,
                                absl::Status* sent) { return s->AwaitTransfer(session, transfer, cancelled, sent); };
  return sessions;
}

}  // namespace

// The rank's core: memory space, budget, Loader (loading starts), and on a GPU the device sender.
absl::Status Server::CreateLoader(ServerOptions& options) {
  Impl& i = *impl_;
  options.loader.rank = i.bootstrap->rank();
  options.loader.world_size = i.bootstrap->world_size();
  SC_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointReader> reader, Loader::OpenReader(options.loader));
  i.timeline->Mark("checkpoint metadata");
  SC_ASSIGN_OR_RETURN(std::unique_ptr<MemorySpace> memory, NewMemorySpace(options.device, i.bootstrap->local_rank()));
  i.timeline->Mark("memory space");
  SC_ASSIGN_OR_RETURN(options.loader.memory_budget, MemoryBudget(options, i.bootstrap, memory.get()));
  // Twice the deadline: a pin starts when its rank prepared, and rank 0 may wait up to a deadline
  // for the slowest rank before the client even has the manifest.
  options.loader.lease_ttl = 2 * options.deadline;
  SC_ASSIGN_OR_RETURN(i.loader, Loader::Create(options.loader, std::move(memory), std::move(reader)));
  i.timeline->Mark("loader");
  // Reads start now: the rest (the device sender, ports, the address exchange, which waits for
  // MPI_Init) goes on beside them.
  StartLoading();
  DeviceSessions sessions;
  if (options.device == "cuda") {
    SC_ASSIGN_OR_RETURN(i.device_sender, DeviceSender::Create(options.nccl_library, i.bootstrap->local_rank(),
                                                              options.deadline, i.loader.get()));
    sessions = SessionsOf(i.device_sender.get());
    i.timeline->Mark("device sender");
  }
  i.loader_service = std::make_unique<LoaderService>(i.loader.get(), options.token, i.host, sessions,
                                                     &i.rpc_metrics);
  return absl::OkStatus();
}

// Rank 0: the Coordinator and the client port on exactly `listen` (+ grpc.health.v1, NOT_SERVING
// until every rank is ready).
absl::Status Server::StartCoordinator(const ServerOptions& options, const std::string& listen) {
  Impl& i = *impl_;
  CoordinatorOptions co;
  co.rank_addresses = i.rank_addresses;
  co.token = options.token;
  co.deadline = options.deadline;
  co.tls = options.tls;
  co.checkpoint = i.loader->reader().resolved().dir;
  co.nccl_version = i.device_sender ? i.device_sender->version() : 0;
  Impl* raw = &i;
  co.on_state = [raw](RankState state) {
    {
      std::lock_guard<std::mutex> lock(raw->run_mu);
      raw->state_changed = true;
    }
    raw->run_cv.notify_all();
    if (raw->client_server && raw->client_server->GetHealthCheckService()) {
      raw->client_server->GetHealthCheckService()->SetServingStatus(state == RankState::kReady);
    }
    const bool with_reason = state == RankState::kFailed || state == RankState::kStopping;
    const std::string reason = with_reason ? raw->coordinator->Status().reason() : "";
    std::cout << "shardcastd: " << RankStateName(state) << (with_reason ? absl::StrCat(": ", reason) : "") << std::endl;
    // The same change as one log line (the stdout line above stays: tests and operators read it).
    const LogLevel level = state == RankState::kFailed ? LogLevel::kError : LogLevel::kInfo;
    if (with_reason) {
      LogEvent(level, "service state", {{"state", RankStateName(state)}, {"reason", reason}});
    } else {
      LogEvent(level, "service state", {{"state", RankStateName(state)}});
    }
  };
  i.coordinator = std::make_unique<Coordinator>(co, i.loader.get());
  Loader* loader = i.loader.get();
  i.index = std::make_unique<ServedIndex>(loader->reader().metadata(), loader->options().prefix,
                                          [loader](const BytesEntry& e) { return loader->ReadBytesEntry(e); });
  i.client_service = std::make_unique<ShardcastService>(i.coordinator.get(), options.token, i.index.get(),
                                                        &i.rpc_metrics);
  SC_ASSIGN_OR_RETURN(i.client_server, Bind(listen, {i.client_service.get()}, &i.client_address, true, options.tls));
  i.client_server->GetHealthCheckService()->SetServingStatus(false);
  std::cout << "shardcastd: serving on " << i.client_address << " (" << i.bootstrap->world_size()
            << " loader ranks, device " << options.device << ")" << std::endl;
  LogEvent(LogLevel::kInfo, "service state",
           {{"state", RankStateName(i.coordinator->state())}, {"address", i.client_address},
            {"world_size", i.bootstrap->world_size()}});
  i.coordinator->Start();
  i.coordinator_to_wake = i.coordinator.get();
  return StartMetrics(options);
}

// Rank 0 with --metrics-listen: every rank's metrics from the coordinator's last poll.
absl::Status Server::StartMetrics(const ServerOptions& options) {
  Impl& i = *impl_;
  if (options.metrics_listen.empty()) return absl::OkStatus();
  Coordinator* coordinator = i.coordinator.get();
  SC_ASSIGN_OR_RETURN(i.metrics_server,
                      MetricsHttpServer::Start(options.metrics_listen,
                                               [coordinator] { return RenderServiceMetrics(coordinator->Status()); }));
  std::cout << "shardcastd: metrics on http://" << i.metrics_server->address() << "/metrics" << std::endl;
  LogEvent(LogLevel::kInfo, "metrics serving", {{"address", i.metrics_server->address()}});
  return absl::OkStatus();
}

// Loading runs in the background; Run() watches load_done / load_failed.
void Server::StartLoading() {
  Impl* raw = impl_.get();
  raw->timeline->Add("loading starts at", raw->timeline->elapsed_ms());
  raw->load_thread = std::thread([raw] {
    absl::Status s = raw->loader->Load(raw->timeline);
    if (!s.ok()) {
      raw->load_failed = true;
      LogError("loading failed: ", s.message());
    } else {
      raw->StartupPartDone();
    }
    raw->load_done = true;
    if (Coordinator* c = raw->coordinator_to_wake.load()) c->Wake();  // rank 0: say ready now, not at the next poll
  });
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(ServerOptions options, Bootstrap* bootstrap,
                                                      StartupTimeline* timeline) {
  auto impl = std::make_unique<Impl>();
  if (timeline != nullptr) impl->timeline = timeline;
  impl->options = options;
  impl->bootstrap = bootstrap;
  impl->host = HostName();
  std::unique_ptr<Server> server(new Server(std::move(impl)));
  Impl& i = *server->impl_;
  SC_RETURN_IF_ERROR(server->CreateLoader(options));  // loading starts there
  // Every port binds exactly one host: rank 0's client port --listen's, the data-plane ports
  // --data-host (default: --listen's host when loopback, else this node's name).
  const std::string listen = options.listen.empty() ? i.host + ":0" : options.listen;
  SC_ASSIGN_OR_RETURN(const HostPort listen_hp, SplitHostPort(listen, "--listen"));
  const std::string data_host = DataPlaneHost(options.data_host, listen_hp.host, i.host);
  WarnIfOnlyLoopback({listen_hp.host, data_host});
  SC_ASSIGN_OR_RETURN(i.rank_server, Bind(data_host + ":0", {i.loader_service.get()}, &i.rank_address, false, options.tls));
  i.timeline->Mark("bind");
  SC_ASSIGN_OR_RETURN(i.rank_addresses, bootstrap->AllGather(i.rank_address, options.deadline));
  i.timeline->Mark("address exchange");
  if (bootstrap->rank() == 0) {
    SC_RETURN_IF_ERROR(server->StartCoordinator(options, listen));
    i.timeline->Mark("coordinator");
  }
  i.StartupPartDone();
  return server;
}

int Server::Run(const std::atomic<bool>& stop) {
  Impl& i = *impl_;
  if (i.bootstrap->rank() != 0) i.rank0 = v1::LoaderRank::NewStub(NewChannel(i.rank_addresses[0], i.options.tls));
  std::optional<int> exit_status;
  while (!stop.load() && !exit_status) {
    {
      // Every 200 ms (a signal only sets `stop`), or at once when the service's state changes.
      std::unique_lock<std::mutex> lock(i.run_mu);
      i.run_cv.wait_for(lock, std::chrono::milliseconds(200), [&i] { return i.state_changed; });
      i.state_changed = false;
    }
    exit_status = i.coordinator ? WatchService() : WatchRank0();
  }
  if (exit_status == kExitError) return kExitError;  // rank 0 is gone: nobody to drain for
  // Rank 0 says it is exiting during its drain, which lets the other ranks (polling every 200 ms)
  // see it before its ports close.
  i.loader->SetExiting();
  Drain();
  return exit_status.value_or(kExitOk);
}

// The ready file: {address, pid, world_size, state: "ready"} once ready; {state: "failed",
// reason, address, pid, world_size} when the service failed (readers that only take `address`
// then find the service, whose status explains the failure). Written whole, then renamed.
void Server::WriteReadyFile(RankState state, const std::string& reason) {
  Impl& i = *impl_;
  if (i.options.ready_file.empty()) return;
  Json j = Json::Object();
  j.Set("state", std::string(RankStateName(state)));
  if (!reason.empty()) j.Set("reason", reason);
  j.Set("address", i.client_address);
  j.Set("pid", static_cast<int64_t>(::getpid()));
  j.Set("world_size", i.bootstrap->world_size());
  const std::string tmp = i.options.ready_file + ".tmp";
  std::ofstream(tmp) << j.Dump() << "\n";
  if (std::rename(tmp.c_str(), i.options.ready_file.c_str()) != 0) {
    LogWarning("cannot write --ready-file ", i.options.ready_file, ": ", std::strerror(errno));
  }
}

std::optional<int> Server::WatchService() {
  Impl& i = *impl_;
  const auto now = std::chrono::steady_clock::now();
  const RankState state = i.coordinator->state();
  if (state == RankState::kReady && !i.ready_written) {
    i.ready_written = true;
    WriteReadyFile(RankState::kReady, "");
    i.timeline->Mark("until every rank is ready");
    LogStartup(*i.timeline);
  }
  if (state == RankState::kFailed) {
    if (!i.failure_written) {
      i.failure_written = true;
      i.failed_since = now;
      const std::string reason = i.coordinator->Status().reason();
      WriteReadyFile(RankState::kFailed, reason);
      if (i.options.exit_on_failure.count() > 0) {
        LogError("the service failed (", reason, "); exiting with status ", kExitServiceFailed, " in ",
                 i.options.exit_on_failure.count() / 1000.0, " s (--exit-on-failure)");
      }
    }
    if (i.options.exit_on_failure.count() > 0 && now - *i.failed_since >= i.options.exit_on_failure) {
      return kExitServiceFailed;
    }
    return std::nullopt;
  }
  if (state == RankState::kReady && IdleExitDue()) return kExitOk;
  return std::nullopt;
}

bool Server::IdleExitDue() {
  Impl& i = *impl_;
  const ServerOptions& o = i.options;
  if (o.exit_when_idle.count() == 0 && o.exit_after_clients == 0) return false;
  const uint64_t served = i.coordinator->manifests_served();
  if (served == 0 || !i.coordinator->Idle()) {
    i.idle_since.reset();
    return false;
  }
  const auto now = std::chrono::steady_clock::now();
  if (!i.idle_since) i.idle_since = now;
  if (o.exit_after_clients > 0 && served >= o.exit_after_clients) {
    LogInfo(served, " manifests served and every rank idle: exiting (--exit-after-clients ", o.exit_after_clients, ")");
    return true;
  }
  if (o.exit_when_idle.count() > 0 && now - *i.idle_since >= o.exit_when_idle) {
    LogInfo("every rank idle for ", o.exit_when_idle.count() / 1000.0, " s after ", served,
            " manifests: exiting (--exit-when-idle)");
    return true;
  }
  return false;
}

std::optional<int> Server::WatchRank0() {
  Impl& i = *impl_;
  grpc::ClientContext ctx;
  PrepareClientContext(&ctx, i.options.token, std::chrono::milliseconds(1000));
  v1::RankState st;
  if (i.rank0->GetRankState(&ctx, v1::StatusRequest(), &st).ok()) {
    i.rank0_last_ok = std::chrono::steady_clock::now();
    if (st.exiting()) {
      LogInfo("rank 0 is exiting; exiting too");
      return failed() ? kExitError : kExitOk;
    }
  } else if (std::chrono::steady_clock::now() - i.rank0_last_ok > i.options.deadline) {
    // Non-zero ranks leave when rank 0 is gone for longer than the deadline.
    LogError("rank 0 is gone; exiting");
    return kExitError;
  }
  return std::nullopt;
}

void Server::Drain() {
  Impl& i = *impl_;
  if (i.coordinator) i.coordinator->StartDraining();  // health NOT_SERVING, manifests refused
  i.loader->StartDraining();                          // Prepare refused; transfers go on
  // Health checkers get a moment to see NOT_SERVING; transfers in flight, and manifests handed out
  // whose transfer has not started yet (their leases), get up to the deadline.
  const auto start = std::chrono::steady_clock::now();
  const auto linger = start + std::min<std::chrono::milliseconds>(i.options.deadline, kDrainLinger);
  const auto end = start + i.options.deadline;
  auto busy = [&i] {
    const RankSnapshot s = i.loader->Snapshot();
    return s.clients_active > 0 || s.leases_pinned > 0;
  };
  while ((std::chrono::steady_clock::now() < linger || busy()) && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const uint32_t left = i.loader->Snapshot().clients_active;
  std::cout << "shardcastd rank " << i.bootstrap->rank() << ": stopped"
            << (left ? absl::StrCat(" (", left, " transfers cut off after ", i.options.deadline.count(), " ms)") : "")
            << std::endl;
}

}  // namespace shardcast
