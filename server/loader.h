// Loader: one loader rank's core (plain C++, no gRPC or MPI). It opens the checkpoint, takes the
// tensors it owns (see ownership.h), reads them once into its MemorySpace, and prepares shards
// for requests: plan (reshard/planner) -> executor (CPU or CUDA) -> CRC32C, cached within the
// memory budget (shard bytes plus an estimate of each cached request's host bytes) and a cap on the
// number of cached requests. A prepared request is pinned by a lease from its manifest to the end
// of its transfer (or the lease's deadline), so eviction never takes it from an in-flight client.
// The gRPC adapters (loader_service.h) and rank 0's coordinator sit on top.
#ifndef SHARDCAST_SERVER_LOADER_H_
#define SHARDCAST_SERVER_LOADER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <unordered_map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/reader.h"
#include "common/shard_request.h"
#include "reshard/layout.h"
#include "reshard/layout_cache.h"
#include "reshard/planner.h"
#include "server/memory_space.h"

namespace shardcast {

struct LoaderOptions {
  std::string checkpoint;
  std::optional<int64_t> iteration;
  std::string prefix;                   // keys the service holds
  std::string layout = "megatron";      // default layout of requests: a preset or a file (--layout)
  std::vector<std::string> rules;       // default extra rules
  int rank = 0;
  int world_size = 1;
  uint64_t memory_budget = 0;           // 0: no limit (shardcastd defaults to 90% of free memory)
  size_t max_cached_requests = 1024;    // prepared requests kept at once
  size_t max_leases = 4096;             // pins outstanding at once
  std::chrono::milliseconds lease_ttl{60000};  // a pin's deadline
  int read_threads = 8;
  bool verify_storage_crc = true;       // check records' ZIP CRC-32 (ReaderOptions)
  uint64_t staging_bytes = 256ull << 20;  // per pinned staging buffer (two are used)
};

struct PreparedShard {
  std::string name, key, rule;
  DType dtype = DType::kFloat32;
  Shape shape;
  uint64_t nbytes = 0;
  uint32_t crc32c = 0;
  int owner = 0;
  const void* data = nullptr;           // in the memory space; only on the owner
  const void* allocation = nullptr;     // the allocation `data` lies in (for CUDA IPC export)
};

struct PreparedRequest {
  std::string id;
  std::string description;              // "layout megatron, TP 2 rank 1, prefix ..., 12 shards"
  std::vector<PreparedShard> shards;    // every shard of the request, in plan order
  std::vector<std::string> opaque;
  uint64_t owned_bytes = 0;             // bytes of shards this rank holds (not aliases)
  std::vector<void*> allocations;       // freed on eviction (one slab of cut shards, or none)
};

struct RankSnapshot {
  std::string state;                    // loading | ready | failed
  std::string device;
  uint64_t bytes_read = 0, bytes_selected = 0, memory_held = 0, clients_served = 0;
  uint32_t tensors_owned = 0, clients_active = 0;
  double read_gbps = 0;
  std::string last_error;
  std::vector<std::string> cached_requests;
};

class Loader {
 public:
  // Opens the checkpoint, selects keys, assigns owners. NotFound if --prefix selects nothing.
  static absl::StatusOr<std::unique_ptr<Loader>> Create(LoaderOptions options, std::unique_ptr<MemorySpace> memory);
  ~Loader();

  // Reads the owned tensors into the memory space. Sets state ready, or failed with the error.
  absl::Status Load();

  // The id under which a request's shards are cached (same on every rank).
  std::string RequestId(const ShardRequestSpec& spec) const;

  // Plans the request and produces the shards this rank owns (cached). InvalidArgument for a
  // bad request (over a request limit, a layout that is not a preset or text, a rule, a
  // non-dividing split: the message names every tensor), FailedPrecondition while not ready,
  // Unavailable while draining, ResourceExhausted (with the numbers) beyond the memory budget or
  // the cap on cached requests when nothing unpinned is left to evict. The request is validated,
  // its layout compiled (LayoutCache) and planned before the one-at-a-time production lock is
  // taken. A non-empty `lease` pins the request until EndLease(lease) or lease_ttl (on a rank
  // that owns some of its shards: no transfer from another rank would end it).
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> Prepare(const ShardRequestSpec& spec,
                                                                 const std::string& lease = "");
  // Unpins what `lease` pinned (no-op for an unknown or expired lease).
  void EndLease(const std::string& lease);
  // Refuses new requests from now on (Prepare: Unavailable); transfers of prepared ones go on.
  void StartDraining();
  bool draining() const { return draining_.load(); }
  // What the cache holds beyond shard bytes, in host memory, for one prepared request.
  static uint64_t HostBytes(const PreparedRequest& request);
  // A prepared request by id (nullptr if unknown or evicted).
  std::shared_ptr<const PreparedRequest> Find(const std::string& id);

  // Copies `n` bytes of a prepared shard, from `offset`, to host memory.
  absl::Status CopyOut(const PreparedShard& shard, uint64_t offset, uint64_t n, char* dst);

  RankSnapshot Snapshot() const;
  MemorySpace& memory() { return *memory_; }
  const LoaderOptions& options() const { return options_; }
  const CheckpointReader& reader() const { return *reader_; }
  const std::vector<int>& owners() const { return owners_; }
  void ClientStarted() { ++clients_served_; ++clients_active_; }
  void ClientFinished() { --clients_active_; }
  void SetFailed(const std::string& error);

 private:
  // A validated request's plan (pure: no lock held while it is computed).
  struct CompiledRequest {
    std::optional<DType> dtype;
    std::string prefix;                  // the effective prefix
    std::string layout_description;      // for PreparedRequest::description
    std::vector<RankPlan> plans;         // one: the request's target
  };
  Loader(LoaderOptions options, std::unique_ptr<MemorySpace> memory, std::unique_ptr<CheckpointReader> reader);
  absl::StatusOr<CompiledRequest> Compile(const ShardRequestSpec& spec);
  absl::StatusOr<std::shared_ptr<PreparedRequest>> Produce(const ShardRequestSpec& spec, const std::string& id,
                                                           const CompiledRequest& compiled);
  // Evicts least recently used unpinned requests until `bytes` more and one more request fit;
  // ResourceExhausted with the numbers otherwise. Requires mu_.
  absl::Status MakeRoom(uint64_t bytes);
  void ExpireLeases();  // requires mu_
  void Pin(const std::string& id, const std::string& lease);  // requires mu_
  // Find() that also pins the request under `lease` (if non-empty).
  std::shared_ptr<const PreparedRequest> FindAndPin(const std::string& id, const std::string& lease);

  struct CacheEntry {
    std::shared_ptr<PreparedRequest> request;
    uint64_t host_bytes = 0;
    int pins = 0;                       // live leases
  };
  struct LeaseInfo {
    std::string request_id;
    std::chrono::steady_clock::time_point expires;
  };

  LoaderOptions options_;
  std::unique_ptr<MemorySpace> memory_;
  std::unique_ptr<CheckpointReader> reader_;
  std::unique_ptr<ShardExecutor> executor_;
  std::string default_layout_text_;                          // --layout, read once at Create
  LayoutCache layouts_;                                      // compiled request layouts
  std::vector<const TensorEntry*> selected_;
  std::vector<int> owners_;                                  // per selected tensor
  std::map<const TensorEntry*, void*> tensors_;              // owned, loaded (in tensor_slab_)
  void* tensor_slab_ = nullptr;                              // one allocation for all owned tensors
  uint64_t tensor_bytes_ = 0;

  mutable std::mutex mu_;
  std::string state_ = "loading";
  std::string last_error_;
  double read_gbps_ = 0;
  std::list<CacheEntry> cache_;                               // most recently used first
  std::unordered_map<std::string, std::list<CacheEntry>::iterator> index_;  // by request id
  std::unordered_map<std::string, LeaseInfo> leases_;         // by lease id
  uint64_t cache_bytes_ = 0;                                  // shard bytes + host bytes of cache_
  std::atomic<bool> draining_{false};
  std::mutex prepare_mu_;                                     // one Produce at a time
  std::atomic<uint64_t> clients_served_{0};
  std::atomic<uint32_t> clients_active_{0};
};


}  // namespace shardcast

#endif  // SHARDCAST_SERVER_LOADER_H_
