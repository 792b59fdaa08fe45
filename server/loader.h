// Loader: one loader rank's core (plain C++, no gRPC or MPI), a composition. It opens the
// checkpoint, takes the tensors it owns (see ownership.h), reads them once into its MemorySpace
// (TensorLoader), and prepares shards for requests: plan (reshard/planner) -> executor (CPU or
// CUDA) -> CRC32C, kept in a ShardCache (memory budget, cap on cached requests, LRU, leases that
// pin a request from its manifest to the end of its transfer). It keeps the rank's state and its
// client counters (RankCounters, which the transports report to as a TransferObserver).
// The gRPC adapters (loader_service.h) and rank 0's coordinator sit on top.
#ifndef SHARDCAST_SERVER_LOADER_H_
#define SHARDCAST_SERVER_LOADER_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
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
#include "server/load_progress.h"
#include "server/memory_space.h"
#include "server/prepared_request.h"
#include "server/rank_counters.h"
#include "server/rank_state.h"
#include "server/shard_cache.h"
#include "server/slab_arena.h"
#include "server/tensor_loader.h"

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
  uint64_t staging_bytes = 256ull << 20;  // per staging buffer (two are used)
};

struct RankSnapshot {
  RankState state = RankState::kLoading;  // loading | ready | failed
  std::string device;
  uint64_t bytes_read = 0, bytes_selected = 0, memory_held = 0, clients_served = 0;
  uint32_t tensors_owned = 0, clients_active = 0, leases_pinned = 0;
  double read_gbps = 0;
  LoadProgress progress;                  // payload bytes (bytes_read also counts record headers)
  double load_seconds = 0;                // so far, or in total once loaded
  bool exiting = false;                   // see Loader::SetExiting
  uint64_t memory_budget = 0;             // 0: no limit
  ShardCacheStats requests;               // prepared (admitted), evicted, cached now
  std::array<uint64_t, kTransportCount> bytes_sent{};  // by Transport
  std::string last_error;
  std::vector<std::string> cached_requests;
};

class Loader {
 public:
  // Opens the checkpoint (unless `reader` is given: OpenReader's), selects keys, assigns owners.
  // NotFound if --prefix selects nothing.
  static absl::StatusOr<std::unique_ptr<Loader>> Create(LoaderOptions options, std::unique_ptr<MemorySpace> memory,
                                                        std::unique_ptr<CheckpointReader> reader = nullptr);
  // The reader Create would open, for a caller that opens the checkpoint first (before the memory
  // space, whose CUDA start takes far longer).
  static absl::StatusOr<std::unique_ptr<CheckpointReader>> OpenReader(const LoaderOptions& options);
  ~Loader();

  // Reads the owned tensors into the memory space. Sets state ready, or failed with the error.
  absl::Status Load(StartupTimeline* timeline = nullptr);

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
  void EndLease(const std::string& lease) { cache_.EndLease(lease); }
  // Refuses new requests from now on (Prepare: Unavailable); transfers of prepared ones go on.
  void StartDraining();
  bool draining() const { return draining_.load(); }
  // Rank 0: the service is exiting (idle, or failed); its rank state says so, and the other ranks,
  // which poll it, drain and exit too.
  void SetExiting() { exiting_ = true; }
  // What the cache holds beyond shard bytes, in host memory, for one prepared request.
  static uint64_t HostBytes(const PreparedRequest& request) { return ShardCache::HostBytes(request); }
  // A prepared request by id (nullptr if unknown or evicted).
  std::shared_ptr<const PreparedRequest> Find(const std::string& id) { return cache_.Find(id); }

  // Copies `n` bytes of a prepared shard, from `offset`, to host memory.
  absl::Status CopyOut(const PreparedShard& shard, uint64_t offset, uint64_t n, char* dst);

  RankSnapshot Snapshot() const;
  MemorySpace& memory() { return *memory_; }
  const LoaderOptions& options() const { return options_; }
  const CheckpointReader& reader() const { return *reader_; }
  // The payload of a bytes entry of the checkpoint (rank 0's ReadBytes, through ServedIndex).
  absl::StatusOr<std::string> ReadBytesEntry(const BytesEntry& entry) { return reader_->ReadBytesEntry(entry); }
  const std::vector<int>& owners() const { return owners_; }
  // Where transports report a client's transfer (see TransferGuard).
  TransferObserver* transfers() { return &counters_; }
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
  // Refuses a request unless the rank is ready and not draining, and the lease has room.
  absl::Status CheckAccepting(const std::string& lease);
  absl::StatusOr<std::shared_ptr<PreparedRequest>> Produce(const ShardRequestSpec& spec, const std::string& id,
                                                           const CompiledRequest& compiled);
  // Produce's steps.
  std::shared_ptr<PreparedRequest> NewPreparedRequest(const ShardRequestSpec& spec, const std::string& id,
                                                      const CompiledRequest& compiled) const;
  bool IsWholeTensor(const ShardPlan& shard, std::optional<DType> dtype) const;
  // Whether the request's whole-tensor shards alias the tensors (else they are copied into the
  // request's allocation with its cut shards).
  bool AliasesWholeTensors(const RankPlan& plan, std::optional<DType> dtype) const;
  // Where a request's cut shards go: one slab, at `offsets`.
  struct CutSlab {
    char* data = nullptr;
    const void* allocation = nullptr;  // what a CUDA IPC handle names
    bool resident = false;             // a block of arena_ (kept until exit)
    std::vector<uint64_t> offsets;
  };
  absl::Status AllocateCutShards(const RankPlan& plan, std::optional<DType> dtype, bool alias_whole,
                                 PreparedRequest* request, CutSlab* slab);
  absl::Status CutShards(const RankPlan& plan, std::optional<DType> dtype, bool alias_whole, const CutSlab& slab,
                         PreparedRequest* request);
  absl::Status ChecksumOwnedShards(PreparedRequest* request);

  LoaderOptions options_;
  std::unique_ptr<MemorySpace> memory_;                      // declared first: destroyed last
  std::unique_ptr<CheckpointReader> reader_;
  std::unique_ptr<ShardExecutor> executor_;
  std::string default_layout_text_;                          // --layout, read once at Create
  LayoutCache layouts_;                                      // compiled request layouts
  std::vector<const TensorEntry*> selected_;
  std::vector<int> owners_;                                  // per selected tensor
  std::map<const TensorEntry*, int> owner_of_;               // the same, by tensor
  TensorLoader tensors_;                                     // the owned tensors, once loaded
  ShardCache cache_;                                         // prepared requests
  std::unique_ptr<SlabArena> arena_;                         // GPU: cut shards' blocks (Load makes it)

  mutable std::mutex mu_;
  RankState state_ = RankState::kLoading;
  std::string last_error_;
  double read_gbps_ = 0;
  std::chrono::steady_clock::time_point load_start_{};       // set when Load() starts
  double load_seconds_ = -1;                                 // -1 until Load() ends
  std::atomic<bool> draining_{false};
  std::atomic<bool> exiting_{false};
  std::mutex prepare_mu_;                                     // one Produce at a time
  RankCounters counters_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_LOADER_H_
