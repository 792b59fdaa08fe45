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
  for (auto& r : cache_) {
    for (void* p : r->allocations) memory_->Free(p);
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
  // Fail fast on a bad default layout.
  SC_RETURN_IF_ERROR(Layout::Load(l->options_.layout, l->options_.rules).status());
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
  const std::string layout = s.layout.empty() ? options_.layout : s.layout;
  std::vector<std::string> rules = options_.rules;
  if (!s.layout.empty()) rules.clear();
  rules.insert(rules.end(), s.rules.begin(), s.rules.end());
  const std::string text = absl::StrCat("tp=", s.tp_size, "\nrank=", s.tp_rank, "\nlayout=", layout, "\nrules=",
                                        absl::StrJoin(rules, "\x1f"), "\nprefix=", s.prefix, "\nrenames=",
                                        absl::StrJoin(s.renames, "\x1f"), "\nunstack=", s.unstack, "\ndtype=", s.dtype);
  return Sha256Hex(text).substr(0, 24);
}

std::shared_ptr<const PreparedRequest> Loader::Find(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if ((*it)->id == id) {
      cache_.splice(cache_.begin(), cache_, it);
      return cache_.front();
    }
  }
  return nullptr;
}

absl::Status Loader::MakeRoom(uint64_t bytes) {
  if (!options_.memory_budget) return absl::OkStatus();
  while (tensor_bytes_ + cache_bytes_ + bytes > options_.memory_budget && !cache_.empty()) {
    // Evict the least recently used request nobody is reading (use_count 1: only the cache).
    auto victim = cache_.end();
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if (it->use_count() == 1) victim = it;
    }
    if (victim == cache_.end()) break;
    for (void* p : (*victim)->allocations) memory_->Free(p);
    cache_bytes_ -= (*victim)->owned_bytes;
    cache_.erase(victim);
  }
  if (tensor_bytes_ + cache_bytes_ + bytes > options_.memory_budget) {
    return absl::ResourceExhaustedError(absl::StrCat("rank ", options_.rank, ": the request needs ", bytes,
                                                     " bytes of shards; tensors (", tensor_bytes_, ") and cached shards (",
                                                     cache_bytes_, ") leave less than that in --memory-budget ",
                                                     options_.memory_budget));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const PreparedRequest>> Loader::Prepare(const ShardRequestSpec& spec) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == "failed") return absl::UnavailableError(absl::StrCat("loader rank ", options_.rank, " failed: ", last_error_));
    if (state_ != "ready") return absl::FailedPreconditionError("still loading the checkpoint; retry when ready");
  }
  const std::string id = RequestId(spec);
  std::lock_guard<std::mutex> produce(prepare_mu_);
  if (auto hit = Find(id)) return hit;
  SC_ASSIGN_OR_RETURN(std::shared_ptr<PreparedRequest> req, Produce(spec, id));
  std::lock_guard<std::mutex> lock(mu_);
  cache_.push_front(req);
  cache_bytes_ += req->owned_bytes;
  return std::shared_ptr<const PreparedRequest>(req);
}

absl::StatusOr<std::shared_ptr<PreparedRequest>> Loader::Produce(const ShardRequestSpec& spec, const std::string& id) {
  if (spec.tp_size < 1 || spec.tp_rank < 0 || spec.tp_rank >= spec.tp_size) {
    return absl::InvalidArgumentError(absl::StrCat("tp_rank ", spec.tp_rank, " is not in 0..", spec.tp_size - 1));
  }
  SC_ASSIGN_OR_RETURN(std::optional<DType> dtype, ParseCastDType(spec.dtype));
  std::vector<std::string> rules = spec.layout.empty() ? options_.rules : std::vector<std::string>{};
  rules.insert(rules.end(), spec.rules.begin(), spec.rules.end());
  SC_ASSIGN_OR_RETURN(Layout layout, Layout::Load(spec.layout.empty() ? options_.layout : spec.layout, rules));
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
  SC_ASSIGN_OR_RETURN(std::vector<RankPlan> plans,
                      PlanReshard(reader_->metadata(), layout, {Target{spec.tp_size, spec.tp_rank}}, po));
  const RankPlan& plan = plans[0];
  if (plan.shards.empty()) return absl::NotFoundError(absl::StrCat("no tensor selected by prefix '", po.prefix, "'"));
  std::map<const TensorEntry*, int> owner_of;
  for (size_t i = 0; i < selected_.size(); ++i) owner_of[selected_[i]] = owners_[i];

  auto req = std::make_shared<PreparedRequest>();
  req->id = id;
  req->description = absl::StrCat(id, ": layout ", spec.layout.empty() ? options_.layout : spec.layout,
                                  spec.rules.empty() ? "" : absl::StrCat(" +", spec.rules.size(), " rules"), ", TP ",
                                  spec.tp_size, " rank ", spec.tp_rank, po.prefix.empty() ? "" : ", prefix " + po.prefix,
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
  for (const auto& r : cache_) s.cached_requests.push_back(r->description);
  return s;
}

}  // namespace shardcast
