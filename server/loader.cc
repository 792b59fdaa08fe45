#include "server/loader.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "server/ownership.h"

namespace shardcast {

Loader::Loader(LoaderOptions options, std::unique_ptr<MemorySpace> memory, std::unique_ptr<CheckpointReader> reader)
    : options_(std::move(options)), memory_(std::move(memory)), reader_(std::move(reader)) {}

namespace {

// Offsets of `sizes` packed into one allocation, each aligned to 256 bytes (what cudaMalloc
// gives and every vectorized copy wants); returns the total.
constexpr uint64_t kSlabAlign = 256;
uint64_t PackSlab(const std::vector<uint64_t>& sizes, std::vector<uint64_t>* offsets) {
  uint64_t total = 0;
  offsets->clear();
  for (uint64_t n : sizes) {
    offsets->push_back(total);
    total += (n + kSlabAlign - 1) / kSlabAlign * kSlabAlign;
  }
  return total;
}

}  // namespace

Loader::~Loader() {
  for (auto& e : cache_) {
    for (void* p : e.request->allocations) memory_->Free(p);
  }
  if (tensor_slab_ != nullptr) memory_->Free(tensor_slab_);
}

absl::StatusOr<std::unique_ptr<Loader>> Loader::Create(LoaderOptions options, std::unique_ptr<MemorySpace> memory) {
  ReaderOptions ro;
  ro.iteration = options.iteration;
  ro.threads = options.read_threads;
  ro.verify_storage_crc = options.verify_storage_crc;
  SC_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointReader> reader, CheckpointReader::Open(options.checkpoint, ro));
  std::unique_ptr<Loader> l(new Loader(std::move(options), std::move(memory), std::move(reader)));
  l->selected_ = l->reader_->Select(l->options_.prefix);
  if (l->selected_.empty()) {
    return absl::NotFoundError(absl::StrCat("--prefix '", l->options_.prefix, "' selects none of the ",
                                            l->reader_->metadata().tensors.size(), " tensors in ",
                                            l->reader_->resolved().dir));
  }
  l->owners_ = AssignOwners(l->selected_, l->options_.world_size);
  SC_ASSIGN_OR_RETURN(l->executor_, l->memory_->NewExecutor());
  // The default layout (shardcastd's own --layout: a preset or a server-side file) is read once;
  // requests only ever name presets or carry text. Fail fast on a bad one.
  if (Layout::IsPreset(l->options_.layout)) {
    SC_ASSIGN_OR_RETURN(l->default_layout_text_, Layout::PresetText(l->options_.layout));
  } else {
    SC_ASSIGN_OR_RETURN(l->default_layout_text_, Layout::ReadFile(l->options_.layout));
  }
  SC_RETURN_IF_ERROR(l->layouts_.Get(l->default_layout_text_, l->options_.layout, l->options_.rules).status());
  return l;
}

void Loader::SetFailed(const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  state_ = "failed";
  last_error_ = error;
}

absl::Status Loader::Load() {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<const TensorEntry*> mine;
  uint64_t bytes = 0;
  for (size_t i = 0; i < selected_.size(); ++i) {
    if (owners_[i] == options_.rank) {
      mine.push_back(selected_[i]);
      bytes += selected_[i]->nbytes();
    }
  }
  auto fail = [&](const absl::Status& s) {
    SetFailed(std::string(s.message()));
    return s;
  };
  if (options_.memory_budget && bytes > options_.memory_budget) {
    return fail(absl::ResourceExhaustedError(absl::StrCat("rank ", options_.rank, " owns ", bytes,
                                                          " bytes of tensors; more than --memory-budget ",
                                                          options_.memory_budget)));
  }
  // One allocation for every owned tensor: one CUDA IPC handle covers them all.
  std::vector<uint64_t> sizes, offsets;
  for (const TensorEntry* t : mine) sizes.push_back(t->nbytes());
  const uint64_t slab_bytes = PackSlab(sizes, &offsets);
  {
    absl::StatusOr<void*> p = memory_->Allocate(slab_bytes);
    if (!p.ok()) return fail(p.status());
    tensor_slab_ = *p;
  }
  for (size_t i = 0; i < mine.size(); ++i) tensors_[mine[i]] = static_cast<char*>(tensor_slab_) + offsets[i];
  if (!memory_->is_device()) {
    // Host memory: read straight into the final buffers, all tensors in one parallel batch.
    std::vector<BoxRead> reads;
    for (const TensorEntry* t : mine) reads.push_back(BoxRead{t, FullBox(t->shape), static_cast<char*>(tensors_[t])});
    absl::Status s = reader_->Read(reads);
    if (!s.ok()) return fail(s);
  } else {
    // GPU: read into one pinned buffer while the other is copied to the device. A tensor larger
    // than a buffer goes in dim-0 slabs (contiguous in the tensor).
    const uint64_t cap = options_.staging_bytes;
    void* staging[2];
    for (void*& b : staging) {
      absl::StatusOr<void*> p = memory_->AllocateStaging(cap);
      if (!p.ok()) return fail(p.status());
      b = *p;
    }
    struct Piece {
      const TensorEntry* t;
      Box box;
      uint64_t dst_offset, bytes;
    };
    std::vector<Piece> pieces;
    for (const TensorEntry* t : mine) {
      if (t->nbytes() <= cap || t->shape.empty()) {
        pieces.push_back({t, FullBox(t->shape), 0, t->nbytes()});
        continue;
      }
      const uint64_t row = t->nbytes() / static_cast<uint64_t>(std::max<int64_t>(1, t->shape[0]));
      if (row > cap) return fail(absl::ResourceExhaustedError(absl::StrCat("a row of '", t->key, "' exceeds the staging buffer")));
      const int64_t rows_per = static_cast<int64_t>(cap / row);
      for (int64_t r0 = 0; r0 < t->shape[0]; r0 += rows_per) {
        Box b = FullBox(t->shape);
        b.offsets[0] = r0;
        b.sizes[0] = std::min<int64_t>(rows_per, t->shape[0] - r0);
        pieces.push_back({t, b, static_cast<uint64_t>(r0) * row, static_cast<uint64_t>(b.sizes[0]) * row});
      }
    }
    size_t i = 0;
    int which = 0;
    while (i < pieces.size()) {
      std::vector<BoxRead> reads;
      std::vector<const Piece*> batch;
      uint64_t used = 0;
      while (i < pieces.size() && used + pieces[i].bytes <= cap) {
        reads.push_back(BoxRead{pieces[i].t, pieces[i].box, static_cast<char*>(staging[which]) + used});
        batch.push_back(&pieces[i]);
        used += pieces[i].bytes;
        ++i;
      }
      absl::Status s = reader_->Read(reads);  // overlaps the copy of the previous batch
      if (s.ok()) s = memory_->Synchronize();  // the other buffer is free again after this
      uint64_t off = 0;
      for (const Piece* p : batch) {
        if (!s.ok()) break;
        s = memory_->CopyIn(static_cast<char*>(tensors_[p->t]) + p->dst_offset, static_cast<char*>(staging[which]) + off,
                            p->bytes);
        off += p->bytes;
      }
      if (!s.ok()) {
        memory_->Synchronize().IgnoreError();
        for (void* b : staging) memory_->FreeStaging(b);
        return fail(s);
      }
      which ^= 1;
    }
    absl::Status s = memory_->Synchronize();
    for (void* b : staging) memory_->FreeStaging(b);
    if (!s.ok()) return fail(s);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::lock_guard<std::mutex> lock(mu_);
  tensor_bytes_ = bytes;
  read_gbps_ = secs > 0 ? bytes / secs / 1e9 : 0;
  state_ = "ready";
  return absl::OkStatus();
}

std::string Loader::RequestId(const ShardRequestSpec& s) const {
  const bool server_default = s.layout.empty() && s.layout_text.empty();
  const std::string layout = server_default ? options_.layout : s.layout;
  std::vector<std::string> rules = options_.rules;
  if (!server_default) rules.clear();
  rules.insert(rules.end(), s.rules.begin(), s.rules.end());
  const std::string text = absl::StrCat("tp=", s.tp_size, "\nrank=", s.tp_rank, "\nlayout=", layout,
                                        "\nlayout_text=", Sha256Hex(s.layout_text), "\nrules=",
                                        absl::StrJoin(rules, "\x1f"), "\nprefix=", s.prefix, "\nrenames=",
                                        absl::StrJoin(s.renames, "\x1f"), "\nunstack=", s.unstack, "\ndtype=", s.dtype);
  return Sha256Hex(text).substr(0, 24);
}

std::shared_ptr<const PreparedRequest> Loader::Find(const std::string& id) { return FindAndPin(id, ""); }

std::shared_ptr<const PreparedRequest> Loader::FindAndPin(const std::string& id, const std::string& lease) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return nullptr;
  cache_.splice(cache_.begin(), cache_, it->second);
  Pin(id, lease);
  return cache_.front().request;
}

namespace {

// A heap block's bookkeeping, and what a string costs beyond its characters.
constexpr uint64_t kHeapOverhead = 32;
uint64_t StringBytes(const std::string& s) { return sizeof(std::string) + (s.capacity() > 15 ? s.capacity() + kHeapOverhead : 0); }

}  // namespace

uint64_t Loader::HostBytes(const PreparedRequest& r) {
  // The request, its cache entry and index slot, and every string and vector it owns.
  uint64_t n = sizeof(PreparedRequest) + sizeof(CacheEntry) + 2 * kHeapOverhead + 64 + StringBytes(r.id) * 2 +
               StringBytes(r.description);
  n += r.shards.capacity() * sizeof(PreparedShard) + kHeapOverhead;
  for (const PreparedShard& s : r.shards) {
    n += StringBytes(s.name) + StringBytes(s.key) + StringBytes(s.rule) - 3 * sizeof(std::string);
    n += s.shape.capacity() * sizeof(int64_t) + (s.shape.capacity() ? kHeapOverhead : 0);
  }
  for (const std::string& o : r.opaque) n += StringBytes(o);
  n += r.allocations.capacity() * sizeof(void*) + 2 * kHeapOverhead;  // the opaque and allocation vectors
  return n;
}

void Loader::ExpireLeases() {
  const auto now = std::chrono::steady_clock::now();
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.expires <= now) {
      auto e = index_.find(it->second.request_id);
      if (e != index_.end()) --e->second->pins;
      it = leases_.erase(it);
    } else {
      ++it;
    }
  }
}

void Loader::Pin(const std::string& id, const std::string& lease) {
  if (lease.empty()) return;
  auto e = index_.find(id);
  if (e == index_.end()) return;
  // Only a rank that holds some of the request's shards sees its transfer (which ends the lease).
  const std::vector<PreparedShard>& shards = e->second->request->shards;
  if (std::none_of(shards.begin(), shards.end(), [&](const PreparedShard& s) { return s.owner == options_.rank; })) return;
  auto [it, added] = leases_.try_emplace(lease, LeaseInfo{id, {}});
  it->second.expires = std::chrono::steady_clock::now() + options_.lease_ttl;
  if (added) ++e->second->pins;
}

void Loader::EndLease(const std::string& lease) {
  if (lease.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(lease);
  if (it == leases_.end()) return;
  auto e = index_.find(it->second.request_id);
  if (e != index_.end()) --e->second->pins;
  leases_.erase(it);
}

void Loader::StartDraining() { draining_ = true; }

absl::Status Loader::MakeRoom(uint64_t bytes) {
  ExpireLeases();
  const uint64_t budget = options_.memory_budget;
  auto over = [&] {
    return (budget && tensor_bytes_ + cache_bytes_ + bytes > budget) || cache_.size() + 1 > options_.max_cached_requests;
  };
  while (over() && !cache_.empty()) {
    // Evict the least recently used request that no lease pins and nobody is reading (use_count
    // 1: only the cache).
    auto victim = cache_.end();
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if (it->pins == 0 && it->request.use_count() == 1) victim = it;
    }
    if (victim == cache_.end()) break;
    for (void* p : victim->request->allocations) memory_->Free(p);
    cache_bytes_ -= victim->request->owned_bytes + victim->host_bytes;
    index_.erase(victim->request->id);
    cache_.erase(victim);
  }
  if (!over()) return absl::OkStatus();
  size_t pinned = 0;
  for (const CacheEntry& e : cache_) pinned += e.pins > 0 || e.request.use_count() > 1;
  if (cache_.size() + 1 > options_.max_cached_requests) {
    return absl::ResourceExhaustedError(absl::StrCat("rank ", options_.rank, ": ", cache_.size(),
                                                     " requests are cached (the limit, --max-cached-requests ",
                                                     options_.max_cached_requests, ") and ", pinned,
                                                     " of them are pinned by in-flight clients; retry later"));
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "rank ", options_.rank, ": the request needs ", bytes, " bytes; tensors (", tensor_bytes_,
      ") and cached requests (", cache_bytes_, " bytes in ", cache_.size(), " requests, ", pinned,
      " pinned by in-flight clients) leave ", budget - std::min(budget, tensor_bytes_ + cache_bytes_),
      " of --memory-budget ", budget));
}

absl::StatusOr<std::shared_ptr<const PreparedRequest>> Loader::Prepare(const ShardRequestSpec& spec, const std::string& lease) {
  // Rank 0 makes 32-hex-digit ids; anything much longer is not one of them (and would be kept).
  constexpr size_t kMaxLeaseIdBytes = 64;
  if (lease.size() > kMaxLeaseIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("lease_id: ", lease.size(), " bytes, more than the limit of ",
                                                   kMaxLeaseIdBytes));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == "failed") return absl::UnavailableError(absl::StrCat("loader rank ", options_.rank, " failed: ", last_error_));
    if (state_ != "ready") return absl::FailedPreconditionError("still loading the checkpoint; retry when ready");
    if (draining_) return absl::UnavailableError(absl::StrCat("loader rank ", options_.rank, " is shutting down"));
    ExpireLeases();
    if (!lease.empty() && !leases_.count(lease) && leases_.size() >= options_.max_leases) {
      return absl::ResourceExhaustedError(absl::StrCat("rank ", options_.rank, ": ", leases_.size(),
                                                       " manifests are awaiting their transfers (the limit); retry later"));
    }
  }
  SC_RETURN_IF_ERROR(ValidateShardRequest(spec));
  const std::string id = RequestId(spec);
  if (auto hit = FindAndPin(id, lease)) return hit;
  // Layout compilation and planning run outside prepare_mu_: a heavy request delays only itself.
  SC_ASSIGN_OR_RETURN(const CompiledRequest compiled, Compile(spec));
  std::lock_guard<std::mutex> produce(prepare_mu_);
  if (auto hit = FindAndPin(id, lease)) return hit;  // produced while this one compiled
  SC_ASSIGN_OR_RETURN(std::shared_ptr<PreparedRequest> req, Produce(spec, id, compiled));
  std::lock_guard<std::mutex> lock(mu_);
  // Admit it with its host bytes counted too (the shard bytes had room when they were allocated).
  const uint64_t host = HostBytes(*req);
  if (absl::Status room = MakeRoom(req->owned_bytes + host); !room.ok()) {
    for (void* p : req->allocations) memory_->Free(p);
    return room;
  }
  cache_.push_front(CacheEntry{req, host, 0});
  index_[id] = cache_.begin();
  cache_bytes_ += req->owned_bytes + host;
  Pin(id, lease);
  return std::shared_ptr<const PreparedRequest>(req);
}

absl::StatusOr<Loader::CompiledRequest> Loader::Compile(const ShardRequestSpec& spec) {
  CompiledRequest c;
  SC_ASSIGN_OR_RETURN(c.dtype, ParseCastDType(spec.dtype));
  // The layout: the request's text, a preset it names, or the server's default. Never a file.
  SC_ASSIGN_OR_RETURN(RequestLayoutSource from, ResolveRequestLayout(spec));
  std::vector<std::string> rules;
  if (from.server_default) {
    from.text = default_layout_text_;
    from.source = options_.layout;
    rules = options_.rules;
    c.layout_description = options_.layout;
  } else {
    c.layout_description = spec.layout_text.empty() ? spec.layout
                                                     : absl::StrCat("text ", Sha256Hex(spec.layout_text).substr(0, 12));
  }
  rules.insert(rules.end(), spec.rules.begin(), spec.rules.end());
  SC_ASSIGN_OR_RETURN(std::shared_ptr<const Layout> layout, layouts_.Get(from.text, from.source, rules));
  PlanOptions po;
  po.unstack = spec.unstack;
  po.prefix = options_.prefix;
  if (!spec.prefix.empty()) {
    if (absl::StartsWith(spec.prefix, options_.prefix)) {
      po.prefix = spec.prefix;
    } else if (!absl::StartsWith(options_.prefix, spec.prefix)) {
      return absl::InvalidArgumentError(absl::StrCat("prefix '", spec.prefix, "' is outside what this service holds ('",
                                                     options_.prefix, "')"));
    }
  }
  for (const std::string& r : spec.renames) {
    SC_ASSIGN_OR_RETURN(auto rn, ParseRename(r));
    po.renames.push_back(rn);
  }
  // ValidateShardRequest bounded tp_size and tp_rank: the narrowing to int is exact.
  const Target target{static_cast<int>(spec.tp_size), static_cast<int>(spec.tp_rank)};
  SC_ASSIGN_OR_RETURN(c.plans, PlanReshard(reader_->metadata(), *layout, {target}, po));
  c.prefix = po.prefix;
  return c;
}

absl::StatusOr<std::shared_ptr<PreparedRequest>> Loader::Produce(const ShardRequestSpec& spec, const std::string& id,
                                                                 const CompiledRequest& compiled) {
  const std::optional<DType> dtype = compiled.dtype;
  const RankPlan& plan = compiled.plans[0];
  if (plan.shards.empty()) return absl::NotFoundError(absl::StrCat("no tensor selected by prefix '", compiled.prefix, "'"));
  std::map<const TensorEntry*, int> owner_of;
  for (size_t i = 0; i < selected_.size(); ++i) owner_of[selected_[i]] = owners_[i];

  auto req = std::make_shared<PreparedRequest>();
  req->id = id;
  req->description = absl::StrCat(id, ": layout ", compiled.layout_description,
                                  spec.rules.empty() ? "" : absl::StrCat(" +", spec.rules.size(), " rules"), ", TP ",
                                  spec.tp_size, " rank ", spec.tp_rank,
                                  compiled.prefix.empty() ? "" : ", prefix " + compiled.prefix,
                                  spec.dtype.empty() ? "" : ", dtype " + spec.dtype, ", ", plan.shards.size(), " shards");
  for (const BytesEntry* b : plan.opaque) req->opaque.push_back(b->key);
  // A shard that is the whole tensor, uncast, aliases the tensor's buffer: no copy, no memory.
  auto is_whole_tensor = [&](const ShardPlan& sp) {
    return sp.copy_shape == sp.tensor->shape && sp.zero_fill.empty() && OutputDType(sp.tensor->dtype, dtype) == sp.tensor->dtype;
  };
  // The shards this rank cuts go into one allocation (one CUDA IPC handle per request).
  std::vector<uint64_t> cut_sizes, cut_offsets;
  for (const ShardPlan& sp : plan.shards) {
    if (owner_of[sp.tensor] == options_.rank && !is_whole_tensor(sp)) {
      cut_sizes.push_back(sp.num_elements() * ItemSize(OutputDType(sp.tensor->dtype, dtype)));
    }
  }
  const uint64_t need = PackSlab(cut_sizes, &cut_offsets);
  {
    std::lock_guard<std::mutex> lock(mu_);
    SC_RETURN_IF_ERROR(MakeRoom(need));
  }
  void* slab = nullptr;
  if (!cut_sizes.empty()) {
    SC_ASSIGN_OR_RETURN(slab, memory_->Allocate(need));
    req->allocations.push_back(slab);
    req->owned_bytes = need;
  }
  size_t next_cut = 0;
  std::vector<ShardJob> jobs;
  std::vector<std::vector<SourceBuffer>> sources(plan.shards.size());
  for (size_t i = 0; i < plan.shards.size(); ++i) {
    const ShardPlan& sp = plan.shards[i];
    PreparedShard ps;
    ps.name = sp.name;
    ps.key = sp.key();
    ps.rule = sp.rule_matched ? sp.rule.ToString() : "replicate (default)";
    ps.dtype = OutputDType(sp.tensor->dtype, dtype);
    ps.shape = sp.shape;
    ps.nbytes = sp.num_elements() * ItemSize(ps.dtype);
    ps.owner = owner_of[sp.tensor];
    if (ps.owner == options_.rank) {
      void* tensor = tensors_.at(sp.tensor);
      if (is_whole_tensor(sp)) {
        ps.data = tensor;
        ps.allocation = tensor_slab_;
      } else {
        void* out = static_cast<char*>(slab) + cut_offsets[next_cut++];
        ps.data = out;
        ps.allocation = slab;
        sources[i].assign(sp.tensor->chunks.size(), SourceBuffer{tensor, FullBox(sp.tensor->shape)});
        jobs.push_back(ShardJob{&plan.shards[i], &sources[i], out, ps.dtype});
      }
    }
    req->shards.push_back(std::move(ps));
  }
  absl::Status s = executor_->Run(jobs);
  if (!s.ok()) {
    for (void* p : req->allocations) memory_->Free(p);
    return s;
  }
  // CRC32C of every owned shard, where it lives (on a GPU: computed there).
  std::vector<PreparedShard*> owned;
  std::vector<std::pair<const void*, uint64_t>> spans;
  for (PreparedShard& ps : req->shards) {
    if (ps.owner != options_.rank) continue;
    owned.push_back(&ps);
    spans.emplace_back(ps.data, ps.nbytes);
  }
  absl::StatusOr<std::vector<uint32_t>> crcs = memory_->Checksums(spans);
  if (!crcs.ok()) {
    for (void* p : req->allocations) memory_->Free(p);
    return crcs.status();
  }
  for (size_t i = 0; i < owned.size(); ++i) owned[i]->crc32c = (*crcs)[i];
  return req;
}

absl::Status Loader::CopyOut(const PreparedShard& shard, uint64_t offset, uint64_t n, char* dst) {
  if (shard.owner != options_.rank || shard.data == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("shard '", shard.name, "' is owned by rank ", shard.owner));
  }
  if (offset > shard.nbytes || n > shard.nbytes - offset) return absl::OutOfRangeError("read past the shard's end");
  return memory_->CopyOut(dst, static_cast<const char*>(shard.data) + offset, n);
}

RankSnapshot Loader::Snapshot() const {
  RankSnapshot s;
  std::lock_guard<std::mutex> lock(mu_);
  s.state = state_;
  s.device = memory_->name();
  s.last_error = last_error_;
  s.read_gbps = read_gbps_;
  s.memory_held = tensor_bytes_ + cache_bytes_;
  s.bytes_read = reader_->bytes_read();
  for (size_t i = 0; i < selected_.size(); ++i) {
    if (owners_[i] == options_.rank) {
      s.bytes_selected += selected_[i]->nbytes();
      ++s.tensors_owned;
    }
  }
  s.clients_served = clients_served_.load();
  s.clients_active = clients_active_.load();
  for (const auto& e : cache_) s.cached_requests.push_back(e.request->description);
  return s;
}

}  // namespace shardcast
