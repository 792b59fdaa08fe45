// The reshard planner: for a checkpoint's metadata, a layout and one or many targets
// (tp_size, tp_rank), the copy operations that fill each target shard from the stored chunks.
//
// A box request (PlanBoxes) skips layouts: each box is one piece, intersected with the chunks.
//
// Pure host code: no CUDA, no I/O, no gRPC. Deterministic: the same inputs give the same plan,
// which is what lets every loader rank, the offline CLI and tests compute it independently.
//
// NOTE [How a shard is cut]
// A rule turns (tensor shape, tp_size, tp_rank) into "pieces": boxes of the stored (global)
// tensor, each landing at an offset of the shard.
//   replicate        one piece: the whole tensor.
//   split:D          one piece: [r*n/tp, (r+1)*n/tp) along D.
//   qkv              split along dim 0, after checking Megatron's grouped-QKV constraints.
//   sections:D:...   one piece per section s: [start_s + r*len_s/tp, +len_s/tp) along D, landing
//                    after the parts of the sections before it.
//   vocab:D:M        rows [r*p, (r+1)*p) with p = ceil(V/(M*tp))*M; rows >= V are zero-filled.
// `@stacked` moves D one dim right (the leading layer axis). With `unstack`, a stacked tensor
// becomes L shards named `...layers.<i>.<param>`, each restricted to layer i.
// Every piece is intersected with every stored chunk; each non-empty intersection is one CopyOp.
// Pieces of one shard never overlap and, with the zero fills, cover it exactly: every destination
// byte is written once (checked by the property tests).
#ifndef SHARDCAST_RESHARD_PLANNER_H_
#define SHARDCAST_RESHARD_PLANNER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/metadata.h"
#include "common/box.h"
#include "common/dtype.h"
#include "common/shard_request.h"
#include "reshard/layout.h"

namespace shardcast {

struct Target {
  int tp_size = 1;
  int tp_rank = 0;
};

// Elements `src` (global coordinates of the stored tensor, inside chunk `chunk` of
// TensorEntry::chunks) land at `dst_offset` of the shard (same sizes, copy_shape coordinates).
struct CopyOp {
  int32_t chunk = 0;
  Box src;
  Shape dst_offset;
};

struct ShardPlan {
  const TensorEntry* tensor = nullptr;
  std::string name;          // the client's name (after --rename and unstacking)
  Rule rule;                 // the rule applied
  bool rule_matched = false; // false: no layout rule matched, replicated by default
  bool rule_inferred = false; // the preset's fc1 split:0 became sections:0:2 from the stored grid
  bool box = false;          // a box request's box (no rule: `rule` is unused)
  std::optional<DType> cast; // a box's own cast, over the request's dtype
  std::optional<int> layer;  // unstacked: the layer index
  Shape shape;               // the shard's shape as the client sees it
  Shape copy_shape;          // the shard in the stored tensor's rank (a leading 1 when unstacked)
  std::vector<CopyOp> ops;
  std::vector<Box> zero_fill;  // copy_shape regions to zero (vocab padding)

  const std::string& key() const { return tensor->key; }
  uint64_t num_elements() const;
};

struct RankPlan {
  Target target;
  std::vector<ShardPlan> shards;              // in checkpoint order
  std::vector<const BytesEntry*> opaque;      // non-tensor entries passed through whole
  uint64_t total_elements_bytes = 0;          // sum of shard bytes (stored dtype)
  // What the plan inferred or assumed that the user may need to know, one line per tensor key
  // ("KEY: ..."): a GLU fc1 rule inferred from the stored grid, or an fc1 assumed not gated
  // because the grid cannot tell (only when tp_size > 1: at TP 1 both readings agree).
  std::vector<std::string> notes;
};

struct PlanOptions {
  std::string prefix;                                      // select keys starting with this
  std::vector<std::pair<std::string, std::string>> renames;  // name prefix OLD -> NEW, first match
  bool unstack = false;                                    // split @stacked tensors into layers
  bool include_opaque = true;                              // list bytes entries
};

// How many bytes larger than its tensor a shard may be (a vocab rule pads with zeros: Megatron's
// 128 * TP rows are a few MiB); a rule asking for more is refused rather than allocated.
inline constexpr uint64_t kMaxPaddingBytes = uint64_t{64} << 20;

// Parses "OLD=NEW".
absl::StatusOr<std::pair<std::string, std::string>> ParseRename(const std::string& text);

// Plans every target. The megatron preset's fc1 default (LayoutMatch::glu_fc1_default) becomes
// sections:0:2 (@stacked) when the stored chunk grid shows GLU halves (reshard/glu_grid.h); the
// plan's notes say so, or say that split:0 was assumed. InvalidArgument for a target outside 1..kMaxTpSize, and naming every tensor
// whose rule cannot apply (a split that does not divide, with its size; a dim out of range; qkv
// constraints; a shard over its tensor's size plus kMaxPaddingBytes), all at once. All size arithmetic is
// overflow-checked.
absl::StatusOr<std::vector<RankPlan>> PlanReshard(const CheckpointMetadata& metadata, const Layout& layout,
                                                  const std::vector<Target>& targets, const PlanOptions& options);

// Plans a box request (common/shard_request.h: BoxSpec): one shard per box, named by the box,
// holding elements [offsets, offsets + sizes) of the stored tensor `key` (the box has the
// tensor's rank), cut from whatever stored chunks cover it; boxes may overlap and share keys.
// A box's dtype must be a cast the executors perform (CanCast: between float32, bfloat16 and
// float16). Only keys starting with `prefix` (the service's selection) are served. Checks every
// box and lists every problem at once (a key not served, a rank or box that does not fit the
// tensor, a cast that cannot apply, more than kMaxBoxCopyOps chunk intersections): NotFound when
// every problem is an unknown key, else InvalidArgument. Pure, deterministic.
absl::StatusOr<RankPlan> PlanBoxes(const CheckpointMetadata& metadata, const std::vector<BoxSpec>& boxes,
                                   absl::string_view prefix);

// The dtype a planned shard is produced in: its box's own cast, else the request's (OutputDType:
// floating-point tensors only).
DType ShardOutputDType(const ShardPlan& shard, std::optional<DType> request_cast);

// What cut a planned shard, for reports and manifests: "box", the rule's text, or
// "replicate (default)" when no layout rule matched.
std::string ShardRuleText(const ShardPlan& shard);

// Strict mode: compares a plan with the names (and optionally shapes) a model expects.
// FailedPrecondition listing every missing and unexpected name and every shape mismatch.
absl::Status CheckExpected(const RankPlan& plan,
                           const std::vector<std::pair<std::string, std::optional<Shape>>>& expected);

}  // namespace shardcast

#endif  // SHARDCAST_RESHARD_PLANNER_H_
