#include "client/client.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/crc32c.h"
#include "common/dtype.h"
#include "common/status_macros.h"
#include "common/step_trace.h"
#include "kernels/device_crc32c.h"
#include "proto/request_convert.h"
#include "proto/shardcast/v1/shardcast.grpc.pb.h"
#include "reshard/layout.h"
#include "transport/cuda_ipc.h"
#include "transport/data_plane.h"
#include "transport/device_plane.h"
#include "transport/grpc_tls.h"
#include "transport/nccl_comm.h"
#include "transport/stream_plane.h"

namespace shardcast {
namespace {

// A call's gRPC status as the client reports it: the data plane's conversion, one for all calls.
absl::Status FromGrpc(const grpc::Status& s, const std::string& what) { return StreamCallStatus(s, what); }

void Prepare(grpc::ClientContext* ctx, const ClientOptions& o) {
  ctx->set_deadline(std::chrono::system_clock::now() + o.deadline);
  if (!o.token.empty()) ctx->AddMetadata("authorization", "Bearer " + o.token);
}

// Runs `fn(rank, address, destinations)` for every loader rank owning some destination, in
// parallel, and returns the first error. `entries[i]` is dst[i]'s manifest entry.
// Runs fn(0..n-1) on at most kMaxParallelOwners threads at once (however many loader ranks a
// possibly hostile manifest names); the first error wins.
absl::Status ForEachBounded(size_t n, const std::function<absl::Status(size_t)>& fn) {
  constexpr size_t kMaxParallelOwners = 32;
  std::atomic<size_t> next{0};
  std::mutex mu;
  absl::Status first;
  auto worker = [&] {
    for (size_t i = next++; i < n; i = next++) {
      absl::Status s = fn(i);
      std::lock_guard<std::mutex> lock(mu);
      if (first.ok() && !s.ok()) first = s;
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < std::min(n, kMaxParallelOwners); ++t) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();
  return first;
}

absl::Status ForEachOwner(const Manifest& m, const std::vector<Destination>& dst,
                          const std::vector<const ShardEntry*>& entries,
                          const std::function<absl::Status(int, const std::string&,
                                                           const std::vector<const Destination*>&)>& fn) {
  std::map<int, std::vector<const Destination*>> by_rank;
  for (size_t i = 0; i < dst.size(); ++i) by_rank[entries[i]->owner_rank].push_back(&dst[i]);
  std::vector<std::pair<int, const std::vector<const Destination*>*>> work;
  for (const auto& [rank, list] : by_rank) {
    if (rank < 0 || rank >= static_cast<int>(m.endpoints.size())) {
      return absl::DataLossError(absl::StrCat("the manifest lacks an endpoint for loader rank ", rank));
    }
    work.emplace_back(rank, &list);
  }
  return ForEachBounded(work.size(), [&](size_t i) {
    return fn(work[i].first, m.endpoints[work[i].first], *work[i].second);
  });
}

std::string Peer(int rank, const std::string& address) { return absl::StrCat("loader rank ", rank, " (", address, ")"); }

DataPlaneClock::time_point Deadline(const ClientOptions& o) { return DataPlaneClock::now() + o.deadline; }

std::vector<ShardDestination> ToShardDestinations(const std::vector<const Destination*>& list) {
  std::vector<ShardDestination> out;
  for (const Destination* d : list) out.push_back(ShardDestination{d->name, d->data, d->nbytes});
  return out;
}

// The report of a receive that ended well (CRCs not yet counted).
FetchReport CountReceived(const std::vector<Destination>& dst, const std::string& transport,
                          std::chrono::steady_clock::time_point t0) {
  FetchReport r;
  r.transport = transport;
  for (const Destination& d : dst) {
    r.bytes += d.nbytes;
    ++r.shards;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

absl::Status CheckCrc(const std::string& name, uint32_t received, const ShardEntry& e, const std::string& transport) {
  if (received == e.crc32c) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("'", name, "': CRC32C mismatch after the ", transport, " transfer (received ",
                                          received, ", manifest ", e.crc32c, "): the bytes were corrupted in transit"));
}

// A send's result as a loader rank reported it (a code outside gRPC's range is UNKNOWN).
absl::Status SenderStatus(int32_t code, const std::string& message) {
  if (code == 0) return absl::OkStatus();
  const auto c = code > 0 && code <= 16 ? static_cast<absl::StatusCode>(code) : absl::StatusCode::kUnknown;
  return absl::Status(c, message.substr(0, 1000));
}

// The server's manifest as the client's struct, as sent: ValidateManifest checks the numbers.
Manifest ManifestFromProto(const v1::Manifest& pm) {
  Manifest m;
  m.request_id = pm.request_id();
  m.total_bytes = pm.total_bytes();
  for (const v1::ShardInfo& s : pm.shards()) {
    ShardEntry e;
    e.name = s.name();
    e.key = s.key();
    e.dtype = s.dtype();
    e.rule = s.rule();
    e.shape.assign(s.shape().begin(), s.shape().end());
    e.nbytes = s.nbytes();
    e.crc32c = s.crc32c();
    // uint32 from the server: kept only if it fits an int (else -1, refused by ValidateManifest).
    e.owner_rank = s.owner_rank() <= static_cast<uint32_t>(std::numeric_limits<int>::max())
                       ? static_cast<int>(s.owner_rank())
                       : -1;
    m.shards.push_back(std::move(e));
  }
  m.endpoints.resize(pm.endpoints_size());
  for (const v1::RankEndpoint& e : pm.endpoints()) {
    if (e.rank() < m.endpoints.size()) m.endpoints[e.rank()] = e.address();
  }
  m.opaque.assign(pm.opaque().begin(), pm.opaque().end());
  m.notes.assign(pm.notes().begin(), pm.notes().end());
  m.lease_id = pm.lease_id();
  m.lease_seconds = pm.lease_seconds();
  m.digest = pm.digest();
  return m;
}

// The last few manifests GetManifest received, by request (its serialized proto), so that asking
// again costs the server only a new lease. At most kEntries manifests, kShards shards and about
// kBytes in all (a hostile server cannot make it grow without bound); the least recently used go
// first.
constexpr size_t kMaxDigestBytes = 64;  // ShardRequest.known_manifest's limit (server/coordinator.cc)

class ManifestCache {
 public:
  std::optional<Manifest> Find(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first != key) continue;
      entries_.splice(entries_.begin(), entries_, it);
      return entries_.front().second;
    }
    return std::nullopt;
  }
  void Erase(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.remove_if([&](const auto& e) { return e.first == key; });
  }
  void Put(const std::string& key, const Manifest& m) {
    if (m.shards.size() > kShards || Bytes(key, m) > kBytes) return;
    std::lock_guard<std::mutex> lock(mu_);
    entries_.remove_if([&](const auto& e) { return e.first == key; });
    entries_.emplace_front(key, m);
    entries_.front().second.lease_id.clear();
    size_t shards = 0, kept = 0, bytes = 0;
    for (auto it = entries_.begin(); it != entries_.end();) {
      shards += it->second.shards.size();
      bytes += Bytes(it->first, it->second);
      const bool keep = kept < kEntries && shards <= kShards && bytes <= kBytes;
      kept += keep;
      it = keep ? std::next(it) : entries_.erase(it);
    }
  }

 private:
  // About what an entry takes: its strings and shapes, and a fixed cost per shard.
  static size_t Bytes(const std::string& key, const Manifest& m) {
    size_t n = key.size() + m.request_id.size() + m.digest.size();
    for (const ShardEntry& e : m.shards) {
      n += sizeof(ShardEntry) + e.name.size() + e.key.size() + e.dtype.size() + e.rule.size() + 8 * e.shape.size();
    }
    for (const std::string& s : m.endpoints) n += s.size() + 32;
    for (const std::string& s : m.opaque) n += s.size() + 32;
    for (const std::string& s : m.notes) n += s.size() + 32;
    return n;
  }
  static constexpr size_t kEntries = 16;
  static constexpr size_t kShards = 1 << 18;
  static constexpr size_t kBytes = 64 << 20;
  std::mutex mu_;
  std::list<std::pair<std::string, Manifest>> entries_;  // most recently used first
};

}  // namespace

const ShardEntry* Manifest::Find(const std::string& name) const {
  for (const ShardEntry& s : shards) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

Json FetchReport::ToJson() const {
  Json j = Json::Object();
  j.Set("transport", transport);
  j.Set("bytes", bytes);
  j.Set("shards", shards);
  j.Set("crc_checked", crc_checked);
  j.Set("seconds", seconds);
  j.Set("gbps", seconds > 0 ? bytes / seconds / 1e9 : 0.0);
  return j;
}

Json ManifestToJson(const Manifest& m) {
  Json j = Json::Object();
  j.Set("request_id", m.request_id);
  Json shards = Json::Array();
  for (const ShardEntry& s : m.shards) {
    Json t = Json::Object();
    t.Set("name", s.name);
    t.Set("key", s.key);
    t.Set("dtype", s.dtype);
    t.Set("shape", Json::ArrayOf(s.shape));
    t.Set("nbytes", s.nbytes);
    t.Set("crc32c", static_cast<int64_t>(s.crc32c));
    t.Set("owner_rank", s.owner_rank);
    t.Set("rule", s.rule);
    shards.Append(std::move(t));
  }
  j.Set("shards", std::move(shards));
  j.Set("endpoints", Json::ArrayOf(m.endpoints));
  j.Set("opaque", Json::ArrayOf(m.opaque));
  j.Set("notes", Json::ArrayOf(m.notes));
  j.Set("total_bytes", m.total_bytes);
  if (!m.lease_id.empty()) j.Set("lease_id", m.lease_id);
  if (!m.digest.empty()) j.Set("digest", m.digest);
  return j;
}

struct Client::Impl {
  std::unique_ptr<v1::Shardcast::Stub> stub;
  std::mutex mu;
  std::map<std::string, std::unique_ptr<v1::LoaderRank::Stub>> rank_stubs;  // by address
  std::map<std::string, std::unique_ptr<NcclPeerComm>> comms;                 // by address
  std::shared_ptr<const NcclLib> nccl;
  absl::Status nccl_error;  // why NCCL could not be loaded (then only CUDA IPC works)
  std::string session_id;
  TlsConfig tls;
  IpcMappings ipc_mappings;  // the loader ranks' resident allocations on this client's GPU(s)
  ManifestCache manifests;   // GetManifest's last answers
  // ReleaseIpcLease's queue of (address, lease), sent one by one by `releaser` (started at the
  // first release), which the destructor lets finish the queue before the stubs go.
  std::mutex release_mu;
  std::condition_variable release_cv;
  std::deque<std::pair<std::string, std::string>> releases;
  bool releaser_stop = false;
  std::thread releaser;

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(release_mu);
      releaser_stop = true;
    }
    release_cv.notify_all();
    if (releaser.joinable()) releaser.join();
  }

  v1::LoaderRank::Stub* RankStub(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu);
    auto& s = rank_stubs[address];
    if (!s) s = v1::LoaderRank::NewStub(NewChannel(address, tls));
    return s.get();
  }
};

// While a receive runs, watches rank 0's status (first after 0.5 s, then every 0.5 s: short
// receives never poll). Once rank 0 marks one of the receive's loader ranks failed, it cancels the
// registered calls and keeps the reason, so that the receive fails at once naming the rank
// instead of waiting for its deadline.
class Client::FailureWatch {
 public:
  FailureWatch(v1::Shardcast::Stub* stub, const ClientOptions& options, std::set<int> ranks)
      : stub_(stub), options_(options), ranks_(std::move(ranks)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~FailureWatch() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      if (polling_ != nullptr) polling_->TryCancel();
    }
    cv_.notify_all();
    thread_.join();
  }
  // Something to cancel when a watched rank fails (cancelled at once if one already has): a gRPC
  // call, an NCCL wait. Returns the id to Remove it by once it is over.
  int Add(std::function<void()> cancel) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!failure_.ok()) cancel();
    cancels_.emplace(++next_id_, std::move(cancel));
    return next_id_;
  }
  void Remove(int id) {
    std::lock_guard<std::mutex> lock(mu_);
    cancels_.erase(id);
  }
  // Add() for as long as the call it cancels runs.
  class Scoped {
   public:
    Scoped(FailureWatch* watch, std::function<void()> cancel) : watch_(watch), id_(watch->Add(std::move(cancel))) {}
    ~Scoped() { watch_->Remove(id_); }

   private:
    FailureWatch* watch_;
    int id_;
  };
  // OK, or UNAVAILABLE "loader rank N failed: ...".
  absl::Status failure() {
    std::lock_guard<std::mutex> lock(mu_);
    return failure_;
  }

 private:
  static constexpr std::chrono::milliseconds kInterval{500};
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_ && failure_.ok()) {
      cv_.wait_for(lock, kInterval, [this] { return stop_; });
      if (stop_) break;
      grpc::ClientContext ctx;
      Prepare(&ctx, options_);
      ctx.set_deadline(std::chrono::system_clock::now() + std::min<std::chrono::milliseconds>(options_.deadline, std::chrono::seconds(2)));
      polling_ = &ctx;
      lock.unlock();
      v1::ServiceStatus st;
      const grpc::Status s = stub_->GetStatus(&ctx, v1::StatusRequest(), &st);
      lock.lock();
      polling_ = nullptr;
      if (!s.ok() || st.state() != "failed") continue;
      for (const v1::RankState& r : st.ranks()) {
        if (r.state() == "failed" && ranks_.count(static_cast<int>(r.rank()))) {
          failure_ = absl::UnavailableError(absl::StrCat("loader rank ", r.rank(), " failed: ", r.last_error(),
                                                         " (the sidecar is failed: ", st.reason(), ")"));
          break;
        }
      }
      if (!failure_.ok()) {
        for (auto& [id, cancel] : cancels_) cancel();
      }
    }
  }

  v1::Shardcast::Stub* stub_;
  const ClientOptions options_;
  const std::set<int> ranks_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  absl::Status failure_;
  std::map<int, std::function<void()>> cancels_;
  int next_id_ = 0;
  grpc::ClientContext* polling_ = nullptr;
  std::thread thread_;
};

namespace {

std::set<int> Owners(const std::vector<const ShardEntry*>& entries) {
  std::set<int> owners;
  for (const ShardEntry* e : entries) owners.insert(e->owner_rank);
  return owners;
}

// Waits until `channel` is connected. A failed attempt (connection refused, no such host, a TLS
// handshake refused) ends the wait at once: gRPC would otherwise retry with backoff until the
// deadline, and a user who mistyped the address would wait the whole of it.
absl::Status AwaitConnected(grpc::Channel& channel, const std::string& address, std::chrono::milliseconds deadline,
                            const TlsConfig& tls) {
  const auto until = std::chrono::system_clock::now() + deadline;
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      return absl::UnavailableError(absl::StrCat("cannot connect to shardcastd at ", address,
                                                 " (connection refused or failed): ", ConnectHint(tls)));
    }
    if (!channel.WaitForStateChange(state, until)) {
      return absl::UnavailableError(absl::StrCat("cannot reach shardcastd at ", address, " within ", deadline.count(),
                                                 " ms: ", ConnectHint(tls)));
    }
    state = channel.GetState(/*try_to_connect=*/true);
  }
  return absl::OkStatus();
}

}  // namespace

Client::Client(ClientOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}
Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
  if (options.address.empty()) {
    return absl::InvalidArgumentError("no server address: pass --server HOST:PORT (or set SHARDCAST_ADDR)");
  }
  // gRPC's default (c-ares) resolver can stall for seconds on a host name that only /etc/hosts
  // knows (containers, VMs without DNS); the system resolver answers at once. A value the user
  // set is kept. setenv is not safe beside other threads' getenv: only the first Connect of a
  // process that did not set it changes the environment (the Python package sets it at import).
  if (std::getenv("GRPC_DNS_RESOLVER") == nullptr) setenv("GRPC_DNS_RESOLVER", "native", /*overwrite=*/0);
  if (options.tls_ca_file.empty() && std::getenv("SHARDCAST_TLS_CA")) options.tls_ca_file = std::getenv("SHARDCAST_TLS_CA");
  if (options.tls_server_name.empty() && std::getenv("SHARDCAST_TLS_SERVER_NAME")) {
    options.tls_server_name = std::getenv("SHARDCAST_TLS_SERVER_NAME");
  }
  SC_ASSIGN_OR_RETURN(TlsConfig tls, LoadTlsConfig("", "", options.tls_ca_file, options.tls_server_name));
  std::unique_ptr<Client> c(new Client(std::move(options)));
  c->impl_->tls = tls;
  auto channel = NewChannel(c->options_.address, tls);
  SC_RETURN_IF_ERROR(AwaitConnected(*channel, c->options_.address, c->options_.deadline, tls));
  c->impl_->stub = v1::Shardcast::NewStub(channel);
  std::random_device rd;
  c->impl_->session_id = absl::StrCat(absl::Hex(rd()), absl::Hex(rd()), absl::Hex(rd()));
  return c;
}

absl::StatusOr<Json> Client::Status() {
  grpc::ClientContext ctx;
  Prepare(&ctx, options_);
  v1::ServiceStatus st;
  SC_RETURN_IF_ERROR(FromGrpc(impl_->stub->GetStatus(&ctx, v1::StatusRequest(), &st), "status"));
  Json j = Json::Object();
  j.Set("state", st.state());
  if (!st.reason().empty()) j.Set("reason", st.reason());
  j.Set("uptime_seconds", st.uptime_seconds());
  j.Set("checkpoint", st.checkpoint());
  j.Set("world_size", static_cast<int64_t>(st.world_size()));
  j.Set("nccl_version", st.nccl_version());
  j.Set("payload_bytes_done", st.payload_bytes_done());
  j.Set("payload_bytes_total", st.payload_bytes_total());
  j.Set("percent", st.percent());
  j.Set("eta_seconds", st.eta_seconds());
  j.Set("manifests_in_flight", static_cast<int64_t>(st.manifests_in_flight()));
  j.Set("manifests_served", st.manifests_served());
  Json ranks = Json::Array();
  for (const v1::RankState& r : st.ranks()) {
    Json rj = Json::Object();
    rj.Set("rank", static_cast<int64_t>(r.rank()));
    rj.Set("state", r.state());
    rj.Set("host", r.host());
    rj.Set("address", r.address());
    rj.Set("device", r.device());
    rj.Set("bytes_read", r.bytes_read());
    rj.Set("bytes_selected", r.bytes_selected());
    rj.Set("payload_bytes_done", r.payload_bytes_done());
    rj.Set("percent", r.percent());
    rj.Set("eta_seconds", r.eta_seconds());
    rj.Set("load_seconds", r.load_seconds());
    rj.Set("leases_pinned", static_cast<int64_t>(r.leases_pinned()));
    rj.Set("read_gbps", r.read_gbps());
    rj.Set("memory_held", r.memory_held());
    rj.Set("tensors_owned", static_cast<int64_t>(r.tensors_owned()));
    rj.Set("clients_served", r.clients_served());
    rj.Set("clients_active", static_cast<int64_t>(r.clients_active()));
    rj.Set("last_error", r.last_error());
    rj.Set("pid", r.pid());
    ranks.Append(std::move(rj));
  }
  j.Set("ranks", std::move(ranks));
  Json cached = Json::Array();
  for (const std::string& c : st.cached_layouts()) cached.Append(Json(c));
  j.Set("cached_layouts", std::move(cached));
  return j;
}

absl::StatusOr<ShardRequestSpec> ResolveLayout(ShardRequestSpec spec) {
  // A layout that is not a preset is a local file: the service never opens a path a request
  // names, so its text is sent instead. A bare name that is no file goes to the server as a
  // preset name (it may know presets this client does not), which answers naming its presets.
  if (!spec.layout.empty() && spec.layout_text.empty() && !Layout::IsPreset(spec.layout)) {
    struct stat st;
    if (spec.layout.find('/') != std::string::npos || ::stat(spec.layout.c_str(), &st) == 0) {
      SC_ASSIGN_OR_RETURN(spec.layout_text, Layout::ReadFile(spec.layout));
      spec.layout.clear();
      // An empty file is the empty layout (everything replicated), not the server's default.
      if (spec.layout_text.empty()) spec.layout_text = "# (empty layout file)\n";
    }
  }
  SC_RETURN_IF_ERROR(ValidateShardRequest(spec));
  return spec;
}

absl::Status ValidateManifest(const Manifest& m) {
  const uint64_t ranks = m.endpoints.size();
  for (const ShardEntry& e : m.shards) {
    const std::string what = absl::StrCat("the server's manifest: shard '", e.name.substr(0, 200), "'");
    if (e.owner_rank < 0 || static_cast<uint64_t>(e.owner_rank) >= ranks) {
      return absl::DataLossError(absl::StrCat(what, " names loader rank ", e.owner_rank, " of ", ranks));
    }
    absl::StatusOr<DType> dtype = DTypeFromName(e.dtype);
    if (!dtype.ok()) return absl::DataLossError(absl::StrCat(what, " has an unknown dtype '", e.dtype.substr(0, 32), "'"));
    // shape x item size == nbytes, with every product checked (no wrap-around can make them agree).
    uint64_t n = ItemSize(*dtype);
    for (int64_t d : e.shape) {
      if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
        return absl::DataLossError(absl::StrCat(what, " has an impossible shape ", ShapeToString(e.shape)));
      }
    }
    if (n != e.nbytes) {
      return absl::DataLossError(absl::StrCat(what, ": shape ", ShapeToString(e.shape), " of ", e.dtype, " is ", n,
                                              " bytes, the manifest says ", e.nbytes));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Manifest> Client::GetManifest(const ShardRequestSpec& spec_in) {
  SC_ASSIGN_OR_RETURN(const ShardRequestSpec spec, ResolveLayout(spec_in));
  v1::ShardRequest req = ShardRequestToProto(spec);  // validated by ResolveLayout
  const std::string key = req.SerializeAsString();
  std::optional<Manifest> known = impl_->manifests.Find(key);
  if (known) req.set_known_manifest(known->digest);
  grpc::ClientContext ctx;
  Prepare(&ctx, options_);
  v1::Manifest pm;
  SC_RETURN_IF_ERROR(FromGrpc(impl_->stub->GetManifest(&ctx, req, &pm), "manifest"));
  if (pm.unchanged()) {
    if (!known || pm.digest() != known->digest || pm.request_id() != known->request_id) {
      impl_->manifests.Erase(key);
      return absl::DataLossError("the server answered that the manifest is unchanged, but it is not the one this "
                                 "client holds (digest or request id differs)");
    }
    known->lease_id = pm.lease_id();
    known->lease_seconds = pm.lease_seconds();
    known->unchanged = true;
    return *std::move(known);
  }
  Manifest m = ManifestFromProto(pm);
  SC_RETURN_IF_ERROR(ValidateManifest(m));
  // A digest longer than a server may be sent back (ShardRequest.known_manifest: 64 bytes) is not
  // one to keep: asking with it would be refused.
  if (!m.digest.empty() && m.digest.size() <= kMaxDigestBytes) impl_->manifests.Put(key, m);
  return m;
}

absl::StatusOr<std::vector<const ShardEntry*>> Client::MatchDestinations(const Manifest& m,
                                                                          const std::vector<Destination>& dst) const {
  std::unordered_map<std::string_view, const ShardEntry*> by_name;
  for (const ShardEntry& e : m.shards) by_name.emplace(e.name, &e);
  std::vector<const ShardEntry*> entries;
  std::vector<std::string> problems;
  std::set<std::string> seen;
  for (const Destination& d : dst) {
    auto it = by_name.find(d.name);
    const ShardEntry* e = it == by_name.end() ? nullptr : it->second;
    entries.push_back(e);
    if (e == nullptr) {
      problems.push_back(absl::StrCat("'", d.name, "' is not in the manifest"));
      continue;
    }
    if (!seen.insert(d.name).second) problems.push_back(absl::StrCat("'", d.name, "' is given twice"));
    if (d.data == nullptr && e->nbytes > 0) problems.push_back(absl::StrCat("'", d.name, "' has no buffer"));
    if (d.nbytes != e->nbytes) {
      problems.push_back(absl::StrCat("'", d.name, "': buffer of ", d.nbytes, " bytes, the shard has ", e->nbytes));
    }
    if (!d.dtype.empty() && d.dtype != e->dtype) {
      problems.push_back(absl::StrCat("'", d.name, "': buffer dtype ", d.dtype, ", the shard is ", e->dtype));
    }
    if (d.shape && *d.shape != e->shape) {
      problems.push_back(absl::StrCat("'", d.name, "': buffer shape ", ShapeToString(*d.shape), ", the shard is ",
                                      ShapeToString(e->shape)));
    }
  }
  if (problems.empty()) return entries;
  std::string msg = "refusing to receive (nothing was transferred):";
  for (const std::string& p : problems) absl::StrAppend(&msg, "\n  ", p);
  return absl::InvalidArgumentError(msg);
}

absl::StatusOr<FetchReport> Client::ReceiveHost(const Manifest& m, const std::vector<Destination>& dst) {
  SC_ASSIGN_OR_RETURN(const std::vector<const ShardEntry*> entries, MatchDestinations(m, dst));
  const auto t0 = std::chrono::steady_clock::now();
  FailureWatch watch(impl_->stub.get(), options_, Owners(entries));
  absl::Status received_all = ForEachOwner(m, dst, entries, [&](int rank, const std::string& address,
                                                                const std::vector<const Destination*>& list) {
    return ReceiveOverStream(m, rank, address, list, &watch);
  });
  // A loader rank that rank 0 marked failed is the reason, not the cancelled call.
  if (!received_all.ok()) SC_RETURN_IF_ERROR(watch.failure());
  SC_RETURN_IF_ERROR(received_all);
  FetchReport r = CountReceived(dst, "stream", t0);
  if (options_.verify_crc32c) {
    for (size_t i = 0; i < dst.size(); ++i) {
      SC_RETURN_IF_ERROR(CheckCrc(dst[i].name, Crc32c(dst[i].data, dst[i].nbytes), *entries[i], "stream"));
    }
    r.crc_checked = static_cast<int>(dst.size());
  }
  return r;
}

absl::Status Client::ReceiveOverStream(const Manifest& m, int rank, const std::string& address,
                                       const std::vector<const Destination*>& list, FailureWatch* watch) {
  v1::FetchRequest req;
  req.set_request_id(m.request_id);
  req.set_lease_id(m.lease_id);
  for (const Destination* d : list) req.add_names(d->name);
  grpc::ClientContext ctx;
  Prepare(&ctx, options_);
  v1::LoaderRank::Stub* stub = impl_->RankStub(address);
  StreamReceiver receiver([&] { return stub->Fetch(&ctx, req); }, [&ctx] { ctx.TryCancel(); }, Peer(rank, address));
  FailureWatch::Scoped unwatch(watch, [&receiver] { receiver.Cancel(absl::CancelledError("an owning loader rank failed")); });
  return receiver.Receive(ToShardDestinations(list), Deadline(options_));
}

absl::Status Client::LoadNccl() {
  // NCCL is needed only for loader ranks on other GPUs: a failure to load it is reported then.
  if (!impl_->nccl && impl_->nccl_error.ok()) {
    absl::StatusOr<std::shared_ptr<const NcclLib>> lib = NcclLib::Load(options_.nccl_library);
    if (lib.ok()) {
      impl_->nccl = *lib;
    } else {
      impl_->nccl_error = lib.status();
    }
  }
  return absl::OkStatus();
}

std::string Client::SessionId(int rank) const { return absl::StrCat(impl_->session_id, "-", rank); }

absl::StatusOr<v1::OpenSessionReply> Client::OpenDeviceSession(const Manifest& m, int rank, const std::string& address,
                                                               const std::vector<std::string>& names,
                                                               const std::string& uuid, bool warm_up) {
  v1::OpenSessionRequest open;
  open.set_request_id(m.request_id);
  open.set_lease_id(m.lease_id);
  open.set_client_nccl_version(impl_->nccl ? impl_->nccl->version : 0);
  open.set_session_id(SessionId(rank));
  open.set_client_device_uuid(uuid);
  open.set_allow_ipc(options_.allow_ipc);
  open.set_warm_up(warm_up);
  for (const std::string& n : names) open.add_names(n);
  grpc::ClientContext ctx;
  Prepare(&ctx, options_);
  v1::OpenSessionReply reply;
  absl::Status opened = FromGrpc(impl_->RankStub(address)->OpenDeviceSession(&ctx, open, &reply),
                                 absl::StrCat("GPU session with ", Peer(rank, address)));
  if (!opened.ok() && !impl_->nccl) {
    return absl::Status(opened.code(), absl::StrCat(opened.message(), "\n(this client could not load NCCL: ",
                                                    impl_->nccl_error.message(), ")"));
  }
  SC_RETURN_IF_ERROR(opened);
  if (reply.transport_case() == v1::OpenSessionReply::TRANSPORT_NOT_SET) {
    return absl::DataLossError(absl::StrCat(Peer(rank, address), " answered the GPU session with no transport"));
  }
  return reply;
}

absl::StatusOr<NcclPeerComm*> Client::SessionComm(const std::string& address, const v1::NcclSession& session,
                                                  int device) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->comms.find(address);
    if (it != impl_->comms.end() && session.reused() && !it->second->broken()) return it->second.get();
  }
  if (session.unique_id().empty()) {
    return absl::FailedPreconditionError("the server reused a session this client no longer has");
  }
  SC_ASSIGN_OR_RETURN(std::unique_ptr<NcclPeerComm> c,
                      NcclPeerComm::Create(impl_->nccl, session.unique_id(), 1, device, options_.deadline));
  std::lock_guard<std::mutex> lock(impl_->mu);
  NcclPeerComm* comm = c.get();
  impl_->comms[address] = std::move(c);
  return comm;
}

absl::Status Client::WarmUp(const Manifest& m, int device) {
  SC_ASSIGN_OR_RETURN(const std::string uuid, DeviceUuid(device));
  SC_RETURN_IF_ERROR(LoadNccl());
  std::set<int> owner_set;
  for (const ShardEntry& e : m.shards) owner_set.insert(e.owner_rank);
  const std::vector<int> owners(owner_set.begin(), owner_set.end());
  for (int rank : owners) {
    if (rank < 0 || rank >= static_cast<int>(m.endpoints.size())) {
      return absl::DataLossError(absl::StrCat("the manifest lacks an endpoint for loader rank ", rank));
    }
  }
  return ForEachBounded(owners.size(), [&](size_t i) -> absl::Status {
    const std::string& address = m.endpoints[owners[i]];
    SC_ASSIGN_OR_RETURN(v1::OpenSessionReply reply, OpenDeviceSession(m, owners[i], address, {}, uuid, /*warm_up=*/true));
    if (!reply.has_nccl()) return absl::OkStatus();  // same GPU: CUDA IPC, nothing to form
    return SessionComm(address, reply.nccl(), device).status();
  });
}

absl::StatusOr<FetchReport> Client::ReceiveDevice(const Manifest& m, const std::vector<Destination>& dst, int device) {
  StepTrace trace("receive (device):");
  SC_ASSIGN_OR_RETURN(const std::vector<const ShardEntry*> entries, MatchDestinations(m, dst));
  trace.Mark("match");
  SC_ASSIGN_OR_RETURN(const std::string uuid, DeviceUuid(device));
  trace.Mark("uuid");
  SC_RETURN_IF_ERROR(LoadNccl());
  std::atomic<bool> used_nccl{false}, used_ipc{false};
  const auto t0 = std::chrono::steady_clock::now();
  FailureWatch watch(impl_->stub.get(), options_, Owners(entries));
  trace.Mark("nccl+watch");
  std::map<int, size_t> owned_by;  // the manifest's shards per loader rank (read-only from here)
  for (const ShardEntry& e : m.shards) ++owned_by[e.owner_rank];
  absl::Status received_all = ForEachOwner(m, dst, entries, [&](int rank, const std::string& address,
                                                                const std::vector<const Destination*>& list) -> absl::Status {
    // Every shard the rank holds (the names are distinct: MatchDestinations): ask for "all" rather
    // than name each (the receivers check what comes against `list` either way).
    std::vector<std::string> names;
    if (list.size() != owned_by.at(rank)) {
      for (const Destination* d : list) names.push_back(d->name);
    }
    StepTrace trace("owner:");
    SC_ASSIGN_OR_RETURN(v1::OpenSessionReply reply, OpenDeviceSession(m, rank, address, names, uuid, /*warm_up=*/false));
    trace.Mark("open session");
    if (reply.has_ipc()) {
      used_ipc = true;
      return ReceiveOverIpc(rank, address, reply.ipc(), list, device);
    }
    used_nccl = true;
    return ReceiveOverNccl(rank, address, reply.nccl(), list, device, &watch);
  });
  if (!received_all.ok()) SC_RETURN_IF_ERROR(watch.failure());
  SC_RETURN_IF_ERROR(received_all);
  trace.Mark("transfers");
  FetchReport r = CountReceived(dst, used_nccl && used_ipc ? "nccl+cuda_ipc" : used_ipc ? "cuda_ipc" : "nccl", t0);
  // CRC32C of what arrived, computed on this GPU (nothing is copied back).
  if (options_.verify_crc32c) {
    std::vector<DeviceSpan> spans;
    for (const Destination& d : dst) spans.push_back(DeviceSpan{d.data, d.nbytes});
    SC_ASSIGN_OR_RETURN(std::vector<uint32_t> crcs, DeviceCrc32c(device, spans, options_.deadline));
    for (size_t i = 0; i < dst.size(); ++i) SC_RETURN_IF_ERROR(CheckCrc(dst[i].name, crcs[i], *entries[i], r.transport));
    r.crc_checked = static_cast<int>(dst.size());
    trace.Mark("crc");
  }
  return r;
}

absl::Status Client::ReceiveOverIpc(int rank, const std::string& address, const v1::IpcExport& exported,
                                    const std::vector<const Destination*>& list, int device) {
  // Same GPU: map the loader's allocations and copy device-locally, then release the lease.
  StepTrace trace("ipc receive:");
  IpcShardReceiver receiver(device, exported, Peer(rank, address), &impl_->ipc_mappings);
  const absl::Status copied = receiver.Receive(ToShardDestinations(list), Deadline(options_));
  trace.Mark("receive");
  // After a timeout the copies may still run: the lease then expires on its own, so that the
  // shards' memory is not reused (cut shards' ranges are) under them.
  if (!absl::IsDeadlineExceeded(copied)) ReleaseIpcLease(address, exported.lease());
  return copied;
}

void Client::ReleaseIpcLease(const std::string& address, const std::string& lease) {
  Impl* impl = impl_.get();
  std::lock_guard<std::mutex> lock(impl->release_mu);
  impl->releases.emplace_back(address, lease);
  impl->release_cv.notify_all();
  if (impl->releaser.joinable()) return;
  impl->releaser = std::thread([this, impl] {
    std::unique_lock<std::mutex> lock(impl->release_mu);
    while (true) {
      impl->release_cv.wait(lock, [impl] { return impl->releaser_stop || !impl->releases.empty(); });
      if (impl->releases.empty()) return;  // stopping, and nothing left to release
      const auto [address, lease] = std::move(impl->releases.front());
      impl->releases.pop_front();
      lock.unlock();
      grpc::ClientContext ctx;
      Prepare(&ctx, options_);
      v1::ReleaseIpcRequest request;
      request.set_lease(lease);
      v1::ReleaseIpcReply reply;
      impl->RankStub(address)->ReleaseIpc(&ctx, request, &reply);  // on failure the lease expires by itself
      lock.lock();
    }
  });
}

absl::Status Client::ReceiveOverNccl(int rank, const std::string& address, const v1::NcclSession& session,
                                     const std::vector<const Destination*>& list, int device, FailureWatch* watch) {
  SC_ASSIGN_OR_RETURN(NcclPeerComm* comm, SessionComm(address, session, device));
  // The server's send order (it sends what was asked, in that order); the sizes are ours.
  std::unordered_map<std::string_view, const Destination*> by_name;
  for (const Destination* d : list) by_name.emplace(d->name, d);
  // Each requested shard exactly once: a repeated or missing name would leave a buffer unwritten.
  std::vector<const Destination*> ordered;
  for (const std::string& n : session.names()) {
    auto it = by_name.find(n);
    if (it == by_name.end()) break;
    ordered.push_back(it->second);
    by_name.erase(it);
  }
  if (ordered.size() != list.size() || session.names_size() != static_cast<int>(list.size())) {
    return absl::DataLossError(absl::StrCat(Peer(rank, address), " announced a send order that is not the requested "
                                            "shards, each once"));
  }
  // While ncclRecv waits, AwaitTransfer waits for the server's result of its send: a failed send
  // cancels the receive at once with the server's reason.
  grpc::ClientContext await_ctx;
  Prepare(&await_ctx, options_);
  std::function<absl::Status()> await_sender;
  if (session.transfer_id() != 0) {
    await_sender = [&] { return AwaitSender(address, session.transfer_id(), rank, &await_ctx); };
  }
  NcclShardReceiver receiver(comm, await_sender, [&await_ctx] { await_ctx.TryCancel(); });
  FailureWatch::Scoped unwatch(watch, [&receiver] { receiver.Cancel(absl::CancelledError("an owning loader rank failed")); });
  return receiver.Receive(ToShardDestinations(ordered), Deadline(options_));
}

absl::Status Client::AwaitSender(const std::string& address, uint64_t transfer_id, int rank, grpc::ClientContext* ctx) {
  v1::AwaitTransferRequest req;
  req.set_session_id(SessionId(rank));
  req.set_transfer_id(transfer_id);
  v1::AwaitTransferReply reply;
  // A failed call (cancelled once the receive is over, an older server) says nothing about the send.
  if (!impl_->RankStub(address)->AwaitTransfer(ctx, req, &reply).ok()) return absl::OkStatus();
  return SenderStatus(reply.code(), reply.message());
}

// ---- The service's index and bytes entries ----

namespace {

constexpr size_t kMaxIndexEntries = 1u << 26;  // a server claiming more is refused (DataLoss)
constexpr size_t kBytesKeysPerRequest = 4096;  // the service's cap per ReadBytes request

// One page's entries appended to `index`, each checked.
absl::Status AppendIndexPage(const v1::CheckpointIndex& page, ServiceIndex* index) {
  for (const v1::TensorIndexEntry& t : page.tensors()) {
    if (!DTypeFromName(t.dtype()).ok()) {
      return absl::DataLossError(absl::StrCat("the service's index names an unknown dtype '", t.dtype(), "'"));
    }
    IndexedTensor e{t.key(), t.dtype(), Shape(t.shape().begin(), t.shape().end())};
    for (int64_t d : e.shape) {
      if (d < 0) return absl::DataLossError(absl::StrCat("the service's index gives '", t.key(), "' a negative dimension"));
    }
    index->tensors.push_back(std::move(e));
  }
  for (const v1::BytesIndexEntry& b : page.bytes()) index->bytes.push_back({b.key(), b.nbytes(), b.compressed()});
  return absl::OkStatus();
}

}  // namespace

Json ServiceIndex::ToJson() const {
  Json j = Json::Object();
  j.Set("prefix", prefix);
  Json ts = Json::Array();
  for (const IndexedTensor& t : tensors) {
    Json tj = Json::Object();
    tj.Set("key", t.key);
    tj.Set("dtype", t.dtype);
    tj.Set("shape", Json::ArrayOf(t.shape));
    ts.Append(std::move(tj));
  }
  j.Set("tensors", std::move(ts));
  Json bs = Json::Array();
  for (const IndexedBytes& b : bytes) {
    Json bj = Json::Object();
    bj.Set("key", b.key);
    bj.Set("nbytes", b.nbytes);
    bj.Set("compressed", b.compressed);
    bs.Append(std::move(bj));
  }
  j.Set("bytes", std::move(bs));
  return j;
}

absl::StatusOr<ServiceIndex> Client::GetIndex() {
  ServiceIndex index;
  uint64_t start = 0, total = 0;
  do {
    grpc::ClientContext ctx;
    Prepare(&ctx, options_);
    v1::IndexRequest req;
    req.set_start(start);
    v1::CheckpointIndex page;
    SC_RETURN_IF_ERROR(FromGrpc(impl_->stub->GetIndex(&ctx, req, &page), "index"));
    if (start == 0) total = page.total();
    if (page.total() != total || total > kMaxIndexEntries || (page.next() != 0 && page.next() <= start) ||
        page.next() > total) {
      return absl::DataLossError(absl::StrCat("the service's index pages do not add up (page at ", start, ": next ",
                                              page.next(), ", total ", page.total(), ")"));
    }
    index.prefix = page.prefix();
    SC_RETURN_IF_ERROR(AppendIndexPage(page, &index));
    start = page.next();
  } while (start != 0);
  if (index.tensors.size() + index.bytes.size() != total) {
    return absl::DataLossError(absl::StrCat("the service's index pages hold ", index.tensors.size() + index.bytes.size(),
                                            " entries but it announced ", total));
  }
  return index;
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> Client::ReadBytes(
    const std::vector<std::string>& keys) {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::string> ask;
  for (size_t next = 0; next < keys.size() || !ask.empty();) {
    while (ask.size() < kBytesKeysPerRequest && next < keys.size()) ask.push_back(keys[next++]);
    grpc::ClientContext ctx;
    Prepare(&ctx, options_);
    v1::ReadBytesRequest req;
    for (const std::string& k : ask) req.add_keys(k);
    v1::ReadBytesReply reply;
    SC_RETURN_IF_ERROR(FromGrpc(impl_->stub->ReadBytes(&ctx, req, &reply), "read bytes"));
    // The reply must answer a non-empty prefix of what was asked and leave exactly the rest.
    const size_t n = reply.values_size();
    bool ok = n > 0 && n + reply.remaining_size() == ask.size();
    for (size_t i = 0; ok && i < ask.size(); ++i) {
      ok = (i < n ? reply.values(i).key() : reply.remaining(i - n)) == ask[i];
    }
    if (!ok) return absl::DataLossError("the service's ReadBytes reply does not match the keys asked for");
    for (v1::BytesValue& v : *reply.mutable_values()) out.emplace_back(v.key(), std::move(*v.mutable_data()));
    ask.assign(reply.remaining().begin(), reply.remaining().end());
  }
  return out;
}

}  // namespace shardcast
