// libFuzzer target for the request path: what a loader rank does with a client's ShardRequest
// before any memory is allocated for shards (server/loader.cc, Loader::Prepare/Compile).
//
// Each input is the bytes of a ShardRequest protobuf (ParseFromArray), then, as on the server:
//  1. ValidateShardRequest (common/shard_request): the request limits;
//  2. ResolveRequestLayout + LayoutCache::Get (reshard/layout, layout_cache): preset or text,
//     rules in front, RE2 under its memory limits;
//  3. ParseRename, PlanReshard (reshard/planner) against fixed metadata: a
//     fixture's `.metadata` ($SHARDCAST_FUZZ_METADATA, default the dcp-torch2.11/vit_tp2 fixture).
// A plan that succeeds is checked (a violation aborts, so libFuzzer records it): the target, every
// shard within its tensor's size plus kMaxPaddingBytes, every copy inside its chunk and its shard.
// Sanitizers (ASan + UBSan, built by run_fuzzers.sh) catch memory errors, leaks and UB;
// -rss_limit_mb / -malloc_limit_mb catch huge allocations.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "checkpoint/metadata.h"
#include "checkpoint/metadata_parser.h"
#include "common/box.h"
#include "common/dtype.h"
#include "common/shard_request.h"
#include "proto/request_convert.h"
#include "proto/shardcast/v1/shardcast.pb.h"
#include "reshard/layout.h"
#include "reshard/layout_cache.h"
#include "reshard/planner.h"

namespace {

using namespace shardcast;  // NOLINT

[[noreturn]] void Violation(const char* what, const std::string& detail) {
  std::fprintf(stderr, "INVARIANT VIOLATION (request_fuzzer): %s: %s\n", what, detail.c_str());
  std::abort();
}

const CheckpointMetadata* g_metadata = nullptr;
LayoutCache* g_layouts = nullptr;
std::string* g_default_text = nullptr;

void CheckPlan(const RankPlan& plan, const Target& target) {
  if (plan.target.tp_size != target.tp_size || plan.target.tp_rank != target.tp_rank) Violation("target", "changed");
  for (const ShardPlan& sp : plan.shards) {
    const TensorEntry& t = *sp.tensor;
    if (sp.copy_shape.size() != t.shape.size()) Violation("rank", sp.name);
    uint64_t elements = 1;
    for (int64_t d : sp.copy_shape) {
      if (d < 0) Violation("negative shard dim", sp.name);
      if (__builtin_mul_overflow(elements, static_cast<uint64_t>(d), &elements)) Violation("shard size overflows", sp.name);
    }
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(elements, ItemSize(t.dtype), &bytes) || bytes > t.nbytes() + kMaxPaddingBytes) {
      Violation("shard larger than its tensor plus padding", sp.name);
    }
    for (const CopyOp& op : sp.ops) {
      if (op.chunk < 0 || static_cast<size_t>(op.chunk) >= t.chunks.size()) Violation("chunk index", sp.name);
      const Box& chunk = t.chunks[op.chunk].box;
      if (op.src.rank() != chunk.rank() || op.dst_offset.size() != sp.copy_shape.size()) Violation("op rank", sp.name);
      for (size_t d = 0; d < op.src.rank(); ++d) {
        const int64_t lo = op.src.offsets[d], n = op.src.sizes[d];
        if (n <= 0 || lo < chunk.offsets[d] || lo + n > chunk.offsets[d] + chunk.sizes[d]) Violation("op outside its chunk", sp.name);
        if (op.dst_offset[d] < 0 || op.dst_offset[d] + n > sp.copy_shape[d]) Violation("op outside its shard", sp.name);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("SHARDCAST_FUZZ_METADATA");
  const std::string path = env ? env : "/work/shared/fixtures/dcp-torch2.11/vit_tp2/.metadata";
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<CheckpointMetadata> md = ParseMetadata(ss.str(), path);
  if (!md.ok()) {
    std::fprintf(stderr, "request_fuzzer: cannot load %s: %s (set SHARDCAST_FUZZ_METADATA)\n", path.c_str(),
                 std::string(md.status().message()).c_str());
    std::exit(2);
  }
  g_metadata = new CheckpointMetadata(std::move(*md));
  g_layouts = new LayoutCache(8);  // small: eviction is exercised too
  g_default_text = new std::string(*Layout::PresetText("megatron"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  v1::ShardRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  const ShardRequestSpec spec = ShardRequestFromProto(req);
  if (!ValidateShardRequest(spec).ok()) return 0;
  absl::StatusOr<RequestLayoutSource> from = ResolveRequestLayout(spec);
  if (!from.ok()) return 0;
  std::vector<std::string> rules;
  if (from->server_default) {
    from->text = *g_default_text;
    from->source = "megatron";
  }
  rules.insert(rules.end(), spec.rules.begin(), spec.rules.end());
  absl::StatusOr<std::shared_ptr<const Layout>> layout = g_layouts->Get(from->text, from->source, rules);
  if (!layout.ok()) return 0;
  PlanOptions po;
  po.prefix = spec.prefix;
  po.unstack = spec.unstack;
  for (const std::string& r : spec.renames) {
    absl::StatusOr<std::pair<std::string, std::string>> rn = ParseRename(r);
    if (!rn.ok()) return 0;
    po.renames.push_back(*rn);
  }
  const Target target{static_cast<int>(spec.tp_size), static_cast<int>(spec.tp_rank)};
  absl::StatusOr<std::vector<RankPlan>> plans = PlanReshard(*g_metadata, **layout, {target}, po);
  if (!plans.ok()) {
    if (plans.status().code() != absl::StatusCode::kInvalidArgument) {
      Violation("unexpected error code", std::string(plans.status().message()));
    }
    return 0;
  }
  if (plans->size() != 1) Violation("plans", "not one per target");
  CheckPlan((*plans)[0], target);
  return 0;
}
