// ShardCache: one loader rank's prepared requests, within a memory budget (the loaded tensors'
// bytes, plus each request's shard bytes and an estimate of its host bytes) and a cap on their
// number; least recently used unpinned requests are evicted first. A lease pins a request from
// its manifest to the end of its transfer or the lease's deadline (lease_ttl), so eviction never
// takes it from an in-flight client. No planning, no I/O: a request's buffers are freed when its
// last reference goes. Thread-safe. The clock is injectable (tests expire leases without sleeping).
#ifndef SHARDCAST_SERVER_SHARD_CACHE_H_
#define SHARDCAST_SERVER_SHARD_CACHE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/prepared_request.h"

namespace shardcast {

// What the cache has done since it was made (for metrics).
struct ShardCacheStats {
  uint64_t admitted = 0;   // requests produced and cached
  uint64_t evicted = 0;    // unpinned requests dropped to make room
  size_t cached = 0;       // requests held now
};

struct ShardCacheOptions {
  int rank = 0;                         // named in refusals; only its shards make a pin
  uint64_t memory_budget = 0;           // 0: no limit
  size_t max_cached_requests = 1024;
  size_t max_leases = 4096;             // pins outstanding at once
  std::chrono::milliseconds lease_ttl{60000};
};

class ShardCache {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  explicit ShardCache(ShardCacheOptions options, Clock clock = &std::chrono::steady_clock::now);

  // The bytes of the loaded tensors, counted against the budget before any request.
  void SetTensorBytes(uint64_t bytes);

  // Drops expired leases; ResourceExhausted when `lease` is new and max_leases are outstanding.
  absl::Status CheckLeaseRoom(const std::string& lease);
  // A cached request by id, made the most recently used (nullptr if unknown or evicted).
  std::shared_ptr<const PreparedRequest> Find(const std::string& id) { return FindAndPin(id, ""); }
  // Find() that also pins the request under `lease` (if non-empty).
  std::shared_ptr<const PreparedRequest> FindAndPin(const std::string& id, const std::string& lease);
  // Evicts unpinned requests (least recently used first) until `bytes` more and one more request
  // fit; ResourceExhausted with the numbers otherwise.
  absl::Status Reserve(uint64_t bytes);
  // Caches `request` (its owned bytes plus HostBytes) and pins it under `lease`. On a refusal
  // (Reserve's) the request is dropped: its buffers are freed unless the caller still holds it.
  absl::StatusOr<std::shared_ptr<const PreparedRequest>> Admit(std::shared_ptr<PreparedRequest> request,
                                                               const std::string& lease);
  // Unpins what `lease` pinned (no-op for an empty, unknown or expired lease).
  void EndLease(const std::string& lease);

  uint64_t held_bytes() const;                 // tensors + cached requests
  std::vector<std::string> Descriptions() const;  // most recently used first
  size_t lease_count() const;
  // Leases not yet past their deadline (lease_count may still hold expired ones until the next
  // CheckLeaseRoom drops them).
  size_t live_lease_count() const;
  ShardCacheStats stats() const;

  // What the cache holds beyond shard bytes, in host memory, for one prepared request.
  static uint64_t HostBytes(const PreparedRequest& request);

 private:
  struct Entry {
    std::shared_ptr<PreparedRequest> request;
    uint64_t host_bytes = 0;
    int pins = 0;                       // live leases
  };
  struct LeaseInfo {
    std::string request_id;
    std::chrono::steady_clock::time_point expires;
  };
  // All require mu_.
  void ExpireLeases();
  void Pin(const std::string& id, const std::string& lease);
  void Unpin(const std::string& request_id);
  absl::Status ReserveLocked(uint64_t bytes);
  bool Over(uint64_t bytes) const;
  bool EvictOne();
  absl::Status Refusal(uint64_t bytes) const;

  const ShardCacheOptions options_;
  const Clock clock_;
  mutable std::mutex mu_;
  uint64_t tensor_bytes_ = 0;
  std::list<Entry> entries_;                                         // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;  // by request id
  std::unordered_map<std::string, LeaseInfo> leases_;                 // by lease id
  uint64_t cache_bytes_ = 0;                                         // shard bytes + host bytes of entries_
  uint64_t admitted_ = 0;
  uint64_t evicted_ = 0;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_SHARD_CACHE_H_
