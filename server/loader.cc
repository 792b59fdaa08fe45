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
    : options_(std::move(options)),
      memory_(std::move(memory)),
      reader_(std::move(reader)),
      tensors_(reader_.get(), memory_.get(), options_.staging_bytes),
      cache_(ShardCacheOptions{options_.rank, options_.memory_budget, options_.max_cached_requests, options_.max_leases,
                               options_.lease_ttl}) {}

Loader::~Loader() = default;

absl::StatusOr<std::unique_ptr<CheckpointReader>> Loader::OpenReader(const LoaderOptions& options) {
  ReaderOptions ro;
  ro.iteration = options.iteration;
  ro.threads = options.read_threads;
  ro.verify_storage_crc = options.verify_storage_crc;
  return CheckpointReader::Open(options.checkpoint, ro);
}

absl::StatusOr<std::unique_ptr<Loader>> Loader::Create(LoaderOptions options, std::unique_ptr<MemorySpace> memory,
                                                       std::unique_ptr<CheckpointReader> reader) {
  if (reader == nullptr) {
    SC_ASSIGN_OR_RETURN(reader, OpenReader(options));
  }
  std::unique_ptr<Loader> l(new Loader(std::move(options), std::move(memory), std::move(reader)));
  l->selected_ = l->reader_->Select(l->options_.prefix);
  if (l->selected_.empty()) {
    return absl::NotFoundError(absl::StrCat("--prefix '", l->options_.prefix, "' selects none of the ",
                                            l->reader_->metadata().tensors.size(), " tensors in ",
                                            l->reader_->resolved().dir));
  }
  l->owners_ = AssignOwners(l->selected_, l->options_.world_size);
  for (size_t i = 0; i < l->selected_.size(); ++i) l->owner_of_[l->selected_[i]] = l->owners_[i];
  if (l->memory_->is_device()) {
    // Cut shards' blocks, within the budget's room for shards (none when the tensors fill it: Load
    // fails); with no budget, within 90% of the device's free memory now (the blocks are kept, so
    // requests of ever new sizes must not grow them without bound). 64 MiB at least, a larger
    // request gets a block of its own size. Made here, before any Snapshot, never replaced.
    uint64_t budget = l->options_.memory_budget;
    if (budget == 0) {
      SC_ASSIGN_OR_RETURN(const uint64_t free_bytes, l->memory_->FreeBytes());
      budget = free_bytes / 10 * 9;
    }
    const uint64_t tensors = TensorLoader::TotalBytes(TensorLoader::OwnedBy(l->selected_, l->owners_, l->options_.rank));
    if (budget > tensors) {
      l->arena_ = std::make_unique<SlabArena>([memory = l->memory_.get()](uint64_t n) { return memory->Allocate(n); },
                                              budget - tensors, uint64_t{64} << 20);
    }
  }
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
  state_ = RankState::kFailed;
  last_error_ = error;
}

absl::Status Loader::Load(StartupTimeline* timeline) {
  const auto t0 = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    load_start_ = t0;
  }
  const std::vector<const TensorEntry*> mine = TensorLoader::OwnedBy(selected_, owners_, options_.rank);
  const uint64_t bytes = TensorLoader::TotalBytes(mine);
  absl::Status s;
  if (options_.memory_budget && bytes > options_.memory_budget) {
    s = absl::ResourceExhaustedError(absl::StrCat("rank ", options_.rank, " owns ", bytes,
                                                  " bytes of tensors; more than --memory-budget ",
                                                  options_.memory_budget));
  } else {
    s = tensors_.Load(mine, timeline);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!s.ok()) {
    SetFailed(std::string(s.message()));
    std::lock_guard<std::mutex> lock(mu_);
    load_seconds_ = secs;
    return s;
  }
  cache_.SetTensorBytes(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  load_seconds_ = secs;
  read_gbps_ = secs > 0 ? bytes / secs / 1e9 : 0;
  state_ = RankState::kReady;
  return absl::OkStatus();
}

namespace {

// A box request's identity: every box, length-prefixed (names and keys may hold any byte).
std::string BoxesText(const ShardRequestSpec& s) {
  std::string text = absl::StrCat("boxes\ndtype=", s.dtype, "\n");
  for (const BoxSpec& b : s.boxes) {
    absl::StrAppend(&text, b.name.size(), ":", b.name, b.key.size(), ":", b.key, b.dtype.size(), ":", b.dtype, "[",
                    absl::StrJoin(b.offsets, ","), "][", absl::StrJoin(b.sizes, ","), "]\n");
  }
  return text;
}

}  // namespace

std::string Loader::RequestId(const ShardRequestSpec& s) const {
  if (s.is_box_request()) return Sha256Hex(BoxesText(s)).substr(0, 24);
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

void Loader::StartDraining() { draining_ = true; }

absl::Status Loader::CheckAccepting(const std::string& lease) {
  // Rank 0 makes 32-hex-digit ids; anything much longer is not one of them (and would be kept).
  constexpr size_t kMaxLeaseIdBytes = 64;
  if (lease.size() > kMaxLeaseIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat("lease_id: ", lease.size(), " bytes, more than the limit of ",
                                                   kMaxLeaseIdBytes));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_ == RankState::kFailed) {
      return absl::UnavailableError(absl::StrCat("loader rank ", options_.rank, " failed: ", last_error_));
    }
    if (state_ != RankState::kReady) return absl::FailedPreconditionError("still loading the checkpoint; retry when ready");
  }
  if (draining_) return absl::UnavailableError(absl::StrCat("loader rank ", options_.rank, " is shutting down"));
  return cache_.CheckLeaseRoom(lease);
}

absl::StatusOr<std::shared_ptr<const PreparedRequest>> Loader::Prepare(const ShardRequestSpec& spec, const std::string& lease) {
  SC_RETURN_IF_ERROR(CheckAccepting(lease));
  SC_RETURN_IF_ERROR(ValidateShardRequest(spec));
  const std::string id = RequestId(spec);
  if (auto hit = cache_.FindAndPin(id, lease)) return hit;
  // Layout compilation and planning run outside prepare_mu_: a heavy request delays only itself.
  SC_ASSIGN_OR_RETURN(const CompiledRequest compiled, Compile(spec));
  std::lock_guard<std::mutex> produce(prepare_mu_);
  if (auto hit = cache_.FindAndPin(id, lease)) return hit;  // produced while this one compiled
  SC_ASSIGN_OR_RETURN(std::shared_ptr<PreparedRequest> req, Produce(spec, id, compiled));
  return cache_.Admit(std::move(req), lease);
}

absl::StatusOr<Loader::CompiledRequest> Loader::Compile(const ShardRequestSpec& spec) {
  CompiledRequest c;
  SC_ASSIGN_OR_RETURN(c.dtype, ParseCastDType(spec.dtype));
  if (spec.is_box_request()) {
    SC_ASSIGN_OR_RETURN(RankPlan plan, PlanBoxes(reader_->metadata(), spec.boxes, options_.prefix));
    c.plans.push_back(std::move(plan));
    c.prefix = options_.prefix;
    return c;
  }
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
  const RankPlan& plan = compiled.plans[0];
  if (plan.shards.empty()) return absl::NotFoundError(absl::StrCat("no tensor selected by prefix '", compiled.prefix, "'"));
  std::shared_ptr<PreparedRequest> req = NewPreparedRequest(spec, id, compiled);
  CutSlab slab;
  const bool alias_whole = AliasesWholeTensors(plan, compiled.dtype);
  SC_RETURN_IF_ERROR(AllocateCutShards(plan, compiled.dtype, alias_whole, req.get(), &slab));
  SC_RETURN_IF_ERROR(CutShards(plan, compiled.dtype, alias_whole, slab, req.get()));
  SC_RETURN_IF_ERROR(ChecksumOwnedShards(req.get()));
  return req;
}

std::shared_ptr<PreparedRequest> Loader::NewPreparedRequest(const ShardRequestSpec& spec, const std::string& id,
                                                            const CompiledRequest& compiled) const {
  const RankPlan& plan = compiled.plans[0];
  auto req = std::make_shared<PreparedRequest>();
  req->id = id;
  if (spec.is_box_request()) {
    req->description = absl::StrCat(id, ": ", spec.boxes.size(), " boxes",
                                    spec.dtype.empty() ? "" : ", dtype " + spec.dtype);
  } else {
    req->description = absl::StrCat(id, ": layout ", compiled.layout_description,
                                    spec.rules.empty() ? "" : absl::StrCat(" +", spec.rules.size(), " rules"), ", TP ",
                                    spec.tp_size, " rank ", spec.tp_rank,
                                    compiled.prefix.empty() ? "" : ", prefix " + compiled.prefix,
                                    spec.dtype.empty() ? "" : ", dtype " + spec.dtype, ", ", plan.shards.size(), " shards");
  }
  for (const BytesEntry* b : plan.opaque) req->opaque.push_back(b->key);
  req->notes = plan.notes;
  return req;
}

// A shard that is the whole tensor, uncast: it may alias the tensor's buffer (AliasesWholeTensors).
bool Loader::IsWholeTensor(const ShardPlan& sp, std::optional<DType> dtype) const {
  return sp.copy_shape == sp.tensor->shape && sp.zero_fill.empty() && ShardOutputDType(sp, dtype) == sp.tensor->dtype;
}

// On a GPU, a CUDA IPC client maps every allocation its shards lie in, at about 3 ms per GB the
// first time: a request that cuts shards anyway copies its whole tensors into the same allocation
// (unless they outweigh the cut ones), so that its clients map that one allocation and not the
// rank's whole tensor slab for a few norms and biases.
bool Loader::AliasesWholeTensors(const RankPlan& plan, std::optional<DType> dtype) const {
  if (!memory_->is_device()) return true;
  uint64_t whole = 0, cut = 0;
  for (const ShardPlan& sp : plan.shards) {
    if (owner_of_.at(sp.tensor) != options_.rank) continue;
    (IsWholeTensor(sp, dtype) ? whole : cut) += sp.num_elements() * ItemSize(ShardOutputDType(sp, dtype));
  }
  return cut == 0 || whole > cut;
}


absl::Status Loader::AllocateCutShards(const RankPlan& plan, std::optional<DType> dtype, bool alias_whole,
                                       PreparedRequest* req, CutSlab* slab) {
  // The shards this rank cuts go into one slab (one CUDA IPC handle per request): on a GPU a
  // range of the arena's blocks, which clients keep mapped; in host memory an allocation of the
  // request's own.
  std::vector<uint64_t> cut_sizes;
  for (const ShardPlan& sp : plan.shards) {
    if (owner_of_.at(sp.tensor) == options_.rank && !(alias_whole && IsWholeTensor(sp, dtype))) {
      cut_sizes.push_back(sp.num_elements() * ItemSize(ShardOutputDType(sp, dtype)));
    }
  }
  const uint64_t need = PackSlab(cut_sizes, &slab->offsets);
  SC_RETURN_IF_ERROR(cache_.Reserve(need));
  if (cut_sizes.empty()) return absl::OkStatus();
  req->owned_bytes = need;
  if (memory_->is_device()) {
    if (arena_ == nullptr) return absl::ResourceExhaustedError("no room for cut shards beside the tensors");
    // The blocks stay until exit (CUDA IPC clients keep them mapped) and, with their free space,
    // within the room for shards: ShardCache's count of live bytes can pass while no free range
    // holds `need` in one piece and no block can be added.
    absl::StatusOr<ArenaSlab> range = arena_->Allocate(need);
    if (!range.ok()) {
      if (!absl::IsResourceExhausted(range.status())) return range.status();
      return absl::ResourceExhaustedError(absl::StrCat(
          "rank ", options_.rank, ": no room for ", need, " bytes of cut shards in one piece: ", range.status().message(),
          " (the blocks are kept for CUDA IPC clients' mappings: README \"Memory and leases\")"));
    }
    slab->data = range->data();
    slab->allocation = range->block_base();
    slab->resident = true;
    req->arena_slab = *std::move(range);
    return absl::OkStatus();
  }
  SC_ASSIGN_OR_RETURN(Buffer own, memory_->Allocate(need));
  slab->data = own.bytes();
  slab->allocation = own.data();
  req->allocations.push_back(std::move(own));
  return absl::OkStatus();
}

absl::Status Loader::CutShards(const RankPlan& plan, std::optional<DType> dtype, bool alias_whole, const CutSlab& slab,
                               PreparedRequest* req) {
  size_t next_cut = 0;
  std::vector<ShardJob> jobs;
  std::vector<std::vector<SourceBuffer>> sources(plan.shards.size());
  for (size_t i = 0; i < plan.shards.size(); ++i) {
    const ShardPlan& sp = plan.shards[i];
    PreparedShard ps;
    ps.name = sp.name;
    ps.key = sp.key();
    ps.rule = ShardRuleText(sp);
    ps.dtype = ShardOutputDType(sp, dtype);
    ps.shape = sp.shape;
    ps.nbytes = sp.num_elements() * ItemSize(ps.dtype);
    ps.owner = owner_of_.at(sp.tensor);
    if (ps.owner == options_.rank) {
      void* tensor = tensors_.data(sp.tensor);
      if (alias_whole && IsWholeTensor(sp, dtype)) {
        ps.data = tensor;
        ps.allocation = tensors_.allocation();
        ps.resident = true;
      } else {
        char* out = slab.data + slab.offsets[next_cut++];
        ps.data = out;
        ps.allocation = slab.allocation;
        ps.resident = slab.resident;
        sources[i].assign(sp.tensor->chunks.size(), SourceBuffer{tensor, FullBox(sp.tensor->shape)});
        jobs.push_back(ShardJob{&plan.shards[i], &sources[i], out, ps.dtype});
      }
    }
    req->shards.push_back(std::move(ps));
  }
  return executor_->Run(jobs);
}

absl::Status Loader::ChecksumOwnedShards(PreparedRequest* req) {
  // CRC32C of every owned shard, where it lives (on a GPU: computed there).
  std::vector<PreparedShard*> owned;
  std::vector<std::pair<const void*, uint64_t>> spans;
  for (PreparedShard& ps : req->shards) {
    if (ps.owner != options_.rank) continue;
    owned.push_back(&ps);
    spans.emplace_back(ps.data, ps.nbytes);
  }
  SC_ASSIGN_OR_RETURN(std::vector<uint32_t> crcs, memory_->Checksums(spans));
  for (size_t i = 0; i < owned.size(); ++i) owned[i]->crc32c = crcs[i];
  return absl::OkStatus();
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
  bool load_started = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s.state = state_;
    s.last_error = last_error_;
    s.read_gbps = read_gbps_;
    load_started = load_start_ != std::chrono::steady_clock::time_point{};
    s.load_seconds = load_seconds_ >= 0 ? load_seconds_
                     : load_started ? std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start_).count()
                                    : 0;
  }
  s.device = memory_->name();
  s.memory_held = cache_.held_bytes();
  if (arena_ != nullptr) s.memory_held += arena_->free_bytes();  // kept blocks' free space
  s.bytes_read = reader_->bytes_read();
  for (const TensorEntry* t : TensorLoader::OwnedBy(selected_, owners_, options_.rank)) {
    s.bytes_selected += t->nbytes();
    ++s.tensors_owned;
  }
  s.progress = RankProgress(tensors_.done_bytes(), s.bytes_selected, s.load_seconds, s.state == RankState::kReady);
  if (s.state == RankState::kFailed) s.progress.eta_seconds = -1;  // it will not finish
  s.exiting = exiting_.load();
  s.leases_pinned = static_cast<uint32_t>(cache_.live_lease_count());
  s.clients_served = counters_.clients_served();
  s.clients_active = counters_.clients_active();
  s.cached_requests = cache_.Descriptions();
  s.memory_budget = options_.memory_budget;
  s.requests = cache_.stats();
  for (int t = 0; t < kTransportCount; ++t) s.bytes_sent[t] = counters_.bytes_sent(static_cast<Transport>(t));
  return s;
}

}  // namespace shardcast
