#include "server/shard_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace shardcast {
namespace {

// A heap block's bookkeeping, and what a string costs beyond its characters.
constexpr uint64_t kHeapOverhead = 32;
uint64_t StringBytes(const std::string& s) { return sizeof(std::string) + (s.capacity() > 15 ? s.capacity() + kHeapOverhead : 0); }

}  // namespace

ShardCache::ShardCache(ShardCacheOptions options, Clock clock) : options_(options), clock_(std::move(clock)) {}

void ShardCache::SetTensorBytes(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  tensor_bytes_ = bytes;
}

uint64_t ShardCache::HostBytes(const PreparedRequest& r) {
  // The request, its cache entry and index slot, and every string and vector it owns.
  uint64_t n = sizeof(PreparedRequest) + sizeof(Entry) + 2 * kHeapOverhead + 64 + StringBytes(r.id) * 2 +
               StringBytes(r.description);
  n += r.shards.capacity() * sizeof(PreparedShard) + kHeapOverhead;
  for (const PreparedShard& s : r.shards) {
    n += StringBytes(s.name) + StringBytes(s.key) + StringBytes(s.rule) - 3 * sizeof(std::string);
    n += s.shape.capacity() * sizeof(int64_t) + (s.shape.capacity() ? kHeapOverhead : 0);
  }
  for (const std::string& o : r.opaque) n += StringBytes(o);
  for (const std::string& note : r.notes) n += StringBytes(note);
  n += r.allocations.capacity() * sizeof(Buffer) + 3 * kHeapOverhead;  // the opaque, notes and allocation vectors
  return n;
}

absl::Status ShardCache::CheckLeaseRoom(const std::string& lease) {
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLeases();
  if (!lease.empty() && !leases_.count(lease) && leases_.size() >= options_.max_leases) {
    return absl::ResourceExhaustedError(absl::StrCat("rank ", options_.rank, ": ", leases_.size(),
                                                     " manifests are awaiting their transfers (the limit); retry later"));
  }
  return absl::OkStatus();
}

std::shared_ptr<const PreparedRequest> ShardCache::FindAndPin(const std::string& id, const std::string& lease) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return nullptr;
  entries_.splice(entries_.begin(), entries_, it->second);
  Pin(id, lease);
  return entries_.front().request;
}

void ShardCache::ExpireLeases() {
  const auto now = clock_();
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.expires <= now) {
      Unpin(it->second.request_id);
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
}

void ShardCache::Unpin(const std::string& request_id) {
  auto e = index_.find(request_id);
  if (e != index_.end()) --e->second->pins;
}

void ShardCache::Pin(const std::string& id, const std::string& lease) {
  if (lease.empty()) return;
  auto e = index_.find(id);
  if (e == index_.end()) return;
  // Only a rank that holds some of the request's shards sees its transfer (which ends the lease).
  const std::vector<PreparedShard>& shards = e->second->request->shards;
  if (std::none_of(shards.begin(), shards.end(), [&](const PreparedShard& s) { return s.owner == options_.rank; })) return;
  auto [it, added] = leases_.try_emplace(lease, LeaseInfo{id, {}});
  it->second.expires = clock_() + options_.lease_ttl;
  if (added) ++e->second->pins;
}

void ShardCache::EndLease(const std::string& lease) {
  if (lease.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(lease);
  if (it == leases_.end()) return;
  Unpin(it->second.request_id);
  leases_.erase(it);
}

bool ShardCache::Over(uint64_t bytes) const {
  const uint64_t budget = options_.memory_budget;
  return (budget && tensor_bytes_ + cache_bytes_ + bytes > budget) || entries_.size() + 1 > options_.max_cached_requests;
}

bool ShardCache::EvictOne() {
  // The least recently used request that no lease pins and nobody is reading (use_count 1: only
  // the cache).
  auto victim = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->pins == 0 && it->request.use_count() == 1) victim = it;
  }
  if (victim == entries_.end()) return false;
  cache_bytes_ -= victim->request->owned_bytes + victim->host_bytes;
  index_.erase(victim->request->id);
  entries_.erase(victim);  // frees its buffers
  ++evicted_;
  return true;
}

absl::Status ShardCache::Reserve(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  return ReserveLocked(bytes);
}

absl::Status ShardCache::ReserveLocked(uint64_t bytes) {
  ExpireLeases();
  while (Over(bytes) && EvictOne()) {
  }
  return Over(bytes) ? Refusal(bytes) : absl::OkStatus();
}

absl::Status ShardCache::Refusal(uint64_t bytes) const {
  size_t pinned = 0;
  for (const Entry& e : entries_) pinned += e.pins > 0 || e.request.use_count() > 1;
  if (entries_.size() + 1 > options_.max_cached_requests) {
    return absl::ResourceExhaustedError(absl::StrCat("rank ", options_.rank, ": ", entries_.size(),
                                                     " requests are cached (the limit, --max-cached-requests ",
                                                     options_.max_cached_requests, ") and ", pinned,
                                                     " of them are pinned by in-flight clients; retry later"));
  }
  const uint64_t budget = options_.memory_budget;
  return absl::ResourceExhaustedError(absl::StrCat(
      "rank ", options_.rank, ": the request needs ", bytes, " bytes; tensors (", tensor_bytes_,
      ") and cached requests (", cache_bytes_, " bytes in ", entries_.size(), " requests, ", pinned,
      " pinned by in-flight clients) leave ", budget - std::min(budget, tensor_bytes_ + cache_bytes_),
      " of --memory-budget ", budget));
}

absl::StatusOr<std::shared_ptr<const PreparedRequest>> ShardCache::Admit(std::shared_ptr<PreparedRequest> request,
                                                                         const std::string& lease) {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string id = request->id;
  if (auto it = index_.find(id); it != index_.end()) {  // admitted meanwhile: keep the first
    entries_.splice(entries_.begin(), entries_, it->second);
    Pin(id, lease);
    return std::shared_ptr<const PreparedRequest>(entries_.front().request);
  }
  // Counted with its host bytes too (the shard bytes had room when they were allocated).
  const uint64_t host = HostBytes(*request);
  if (absl::Status room = ReserveLocked(request->owned_bytes + host); !room.ok()) return room;
  cache_bytes_ += request->owned_bytes + host;
  entries_.push_front(Entry{std::move(request), host, 0});
  index_[id] = entries_.begin();
  ++admitted_;
  Pin(id, lease);
  return std::shared_ptr<const PreparedRequest>(entries_.front().request);
}

ShardCacheStats ShardCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ShardCacheStats{admitted_, evicted_, entries_.size()};
}

uint64_t ShardCache::held_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tensor_bytes_ + cache_bytes_;
}

std::vector<std::string> ShardCache::Descriptions() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const Entry& e : entries_) out.push_back(e.request->description);
  return out;
}

size_t ShardCache::lease_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return leases_.size();
}

size_t ShardCache::live_lease_count() const {
  const auto now = clock_();
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<size_t>(std::count_if(leases_.begin(), leases_.end(),
                                           [&](const auto& l) { return l.second.expires > now; }));
}

}  // namespace shardcast
