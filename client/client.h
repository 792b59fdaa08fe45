// The shardcast client library (C++): connect to shardcastd, ask for a manifest, and receive a TP
// rank's shards straight into caller-owned buffers: host memory over the gRPC byte stream, or GPU
// memory over NCCL (CUDA IPC from a loader rank on the client's own GPU). Shapes, dtypes and sizes
// are checked before any byte moves; every shard's CRC32C is checked on arrival (unless disabled);
// every call has a deadline.
//
//   SC_ASSIGN_OR_RETURN(auto client, Client::Connect({"node1:7070", token, 60s}));
//   SC_ASSIGN_OR_RETURN(Manifest m, client->GetManifest(spec));
//   std::vector<Destination> dst = ...;  // one per shard name, with its buffer
//   SC_ASSIGN_OR_RETURN(FetchReport r, client->ReceiveHost(m, dst));
#ifndef SHARDCAST_CLIENT_CLIENT_H_
#define SHARDCAST_CLIENT_CLIENT_H_

#include <chrono>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/box.h"
#include "common/json.h"
#include "common/shard_request.h"
#include "transport/data_plane.h"  // FitsIn

namespace grpc {
class ClientContext;
}  // namespace grpc

namespace shardcast {

namespace v1 {
class IpcExport;
class NcclSession;
class OpenSessionReply;
}  // namespace v1
class NcclPeerComm;

struct ClientOptions {
  std::string address;                         // rank 0, host:port
  std::string token;                           // "" if the service needs none
  std::chrono::milliseconds deadline{60000};   // every RPC and every NCCL wait
  bool verify_crc32c = true;
  std::string nccl_library;                    // for ReceiveDevice; "" = SHARDCAST_NCCL_LIBRARY or libnccl.so.2
  bool allow_ipc = true;                       // CUDA IPC from a loader rank on this client's GPU
  std::string tls_ca_file;                     // TLS: trust this CA / self-signed cert ("" = $SHARDCAST_TLS_CA or plaintext)
  std::string tls_server_name;                 // TLS: name to check in the certificate ("" = the host dialled)
};

struct ShardEntry {
  std::string name, key, dtype, rule;
  Shape shape;
  uint64_t nbytes = 0;
  uint32_t crc32c = 0;
  int owner_rank = 0;
};

struct Manifest {
  std::string request_id;
  std::vector<ShardEntry> shards;
  std::vector<std::string> endpoints;  // by loader rank
  std::vector<std::string> opaque;
  // What the service's plan inferred or assumed (a GLU fc1 rule from the stored grid, or an fc1
  // assumed not gated); callers should show them (the CLI warns once on stderr).
  std::vector<std::string> notes;
  uint64_t total_bytes = 0;
  std::string lease_id;       // pins the shards on the loader ranks until the receive ends (or lease_seconds)
  double lease_seconds = 0;
  // The server's digest of all of the above but the lease (empty from an older server).
  // GetManifest keeps the last few manifests by request and sends the digest of the one it holds;
  // `unchanged` says the server confirmed it and sent only a new lease.
  std::string digest;
  bool unchanged = false;
  const ShardEntry* Find(const std::string& name) const;
};

// Where one shard goes. `dtype` / `shape` (if set) are checked against the manifest.
struct Destination {
  std::string name;
  void* data = nullptr;
  uint64_t nbytes = 0;
  std::string dtype;
  std::optional<Shape> shape;
};

struct FetchReport {
  std::string transport;   // "stream", "nccl", "cuda_ipc" or "nccl+cuda_ipc"
  uint64_t bytes = 0;
  int shards = 0;
  int crc_checked = 0;
  double seconds = 0;
  Json ToJson() const;
};

// ---- The service's index and bytes entries (GetIndex, ReadBytes) ----
struct IndexedTensor {
  std::string key;
  std::string dtype;  // PyTorch name
  Shape shape;        // global shape
};
struct IndexedBytes {
  std::string key;
  uint64_t nbytes = 0;      // as stored (the payload's size unless `compressed`)
  bool compressed = false;  // stored through a stream transform (zstd)
};
// What the service holds (its --prefix's selection), in `.metadata` order.
struct ServiceIndex {
  std::string prefix;
  std::vector<IndexedTensor> tensors;
  std::vector<IndexedBytes> bytes;
  // {"prefix", "tensors": [{"key", "dtype", "shape"}], "bytes": [{"key", "nbytes", "compressed"}]}
  Json ToJson() const;
};

class Client {
 public:
  static absl::StatusOr<std::unique_ptr<Client>> Connect(ClientOptions options);
  ~Client();

  // The service status as JSON (the fields of `shardcast status --json`).
  absl::StatusOr<Json> Status();
  // Validates the request (ResolveLayout) and the server's answer (ValidateManifest).
  absl::StatusOr<Manifest> GetManifest(const ShardRequestSpec& spec);

  // Host buffers, over the gRPC stream from each owning loader rank (in parallel). While it
  // receives, the client watches rank 0's status: once rank 0 marks an owning loader rank failed,
  // the receive is cancelled at once with UNAVAILABLE "loader rank N failed: ...".
  absl::StatusOr<FetchReport> ReceiveHost(const Manifest& manifest, const std::vector<Destination>& dst);
  // Device buffers on `device`: over NCCL from loader ranks on other GPUs (one session per owning
  // rank, reused across calls), by CUDA IPC from a loader rank on this same GPU. NCCL waits are
  // cancelled like stream calls once rank 0 marks an owning rank failed.
  absl::StatusOr<FetchReport> ReceiveDevice(const Manifest& manifest, const std::vector<Destination>& dst, int device);

  // Forms, ahead of time, what a later ReceiveDevice of this manifest on `device` needs: the NCCL
  // communicator with every owning loader rank on another GPU (about 0.5 s each, once per client).
  // The manifest itself has already made the sidecar prepare the shards. Call it early, e.g. on
  // a thread while the model is built; ReceiveDevice then only moves bytes.
  absl::Status WarmUp(const Manifest& manifest, int device);

  // The service's whole index, asked page by page. DataLoss when the pages do not add up (a page
  // that does not advance, totals that change, an unknown dtype, a negative dimension).
  absl::StatusOr<ServiceIndex> GetIndex();
  // Bytes entries by key, as stored (usually torch.save archives), in `keys` order: asked in
  // requests of at most 4096 keys, and again for the keys a reply left over (its 32 MiB cap).
  // The service's refusals (NotFound listing the keys it does not serve, ...) come back as they
  // are; nothing is returned then.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ReadBytes(const std::vector<std::string>& keys);
  const ClientOptions& options() const { return options_; }
  // Settings that may change between calls (verify_crc32c, nccl_library, allow_ipc, deadline).
  ClientOptions& mutable_options() { return options_; }

 private:
  struct Impl;
  explicit Client(ClientOptions options);
  // Every destination's manifest entry (in dst order), or InvalidArgument listing every unknown,
  // repeated or mis-sized destination (nothing moves then).
  absl::StatusOr<std::vector<const ShardEntry*>> MatchDestinations(const Manifest& m,
                                                                   const std::vector<Destination>& dst) const;
  absl::Status LoadNccl();
  class FailureWatch;
  // One owner's part of a receive, through transport/'s data planes: the stream (host buffers),
  // CUDA IPC (then the lease is released) or NCCL (the send's result awaited alongside).
  absl::Status ReceiveOverStream(const Manifest& m, int rank, const std::string& address,
                                 const std::vector<const Destination*>& list, FailureWatch* watch);
  absl::Status ReceiveOverIpc(int rank, const std::string& address, const v1::IpcExport& exported,
                              const std::vector<const Destination*>& list, int device);
  // Queues ReleaseIpc for `lease` on a background thread: the receive is complete once the copies
  // are, and does not wait for the reply (a release that fails leaves the pin to the lease's
  // expiry). The destructor sends what is queued, each call within the deadline.
  void ReleaseIpcLease(const std::string& address, const std::string& lease);
  absl::Status ReceiveOverNccl(int rank, const std::string& address, const v1::NcclSession& session,
                               const std::vector<const Destination*>& list, int device, FailureWatch* watch);
  // Blocks until loader rank `rank` reports how NCCL transfer `transfer_id` ended (its send's
  // status; OK if the call itself fails, e.g. once `ctx` is cancelled).
  absl::Status AwaitSender(const std::string& address, uint64_t transfer_id, int rank, grpc::ClientContext* ctx);
  // The session id this client uses with loader rank `rank`.
  std::string SessionId(int rank) const;
  // Asks loader rank `rank` for a GPU session; DataLoss if its reply names no transport.
  absl::StatusOr<v1::OpenSessionReply> OpenDeviceSession(const Manifest& m, int rank, const std::string& address,
                                                         const std::vector<std::string>& names, const std::string& uuid,
                                                         bool warm_up);
  absl::StatusOr<NcclPeerComm*> SessionComm(const std::string& address, const v1::NcclSession& session, int device);
  ClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

Json ManifestToJson(const Manifest& m);

// What GetManifest sends: a `layout` that is not a preset is read here as a local file and sent
// as layout_text (the service opens no path a request names); then ValidateShardRequest.
absl::StatusOr<ShardRequestSpec> ResolveLayout(ShardRequestSpec spec);

// The checks GetManifest makes on a server's manifest before anything is allocated or written
// from it: DataLoss unless every shard's owner has an endpoint, its dtype is known and its shape
// times the item size equals its nbytes (all products overflow-checked).
absl::Status ValidateManifest(const Manifest& m);

}  // namespace shardcast

#endif  // SHARDCAST_CLIENT_CLIENT_H_
