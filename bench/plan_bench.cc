// plan_bench: times PlanReshard on metadata shaped like a 70B Megatron LLM saved at TP 8: about
// 1,000 tensors, each stored as 8 TP chunks, the per-layer weights stacked over 80 layers
// (so a stacked tensor has 80 x 8 chunks), planned for all 8 ranks of a target TP.
//
//   plan_bench [--target-tp N] [--repeat N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "reshard/layout.h"
#include "reshard/planner.h"

namespace shardcast {
namespace {

// A column- or row-parallel tensor of `shape` saved by `tp` writers (split on `dim`), optionally
// with a leading layer axis of `layers` (one chunk per layer and writer).
TensorEntry Make(const std::string& key, Shape shape, int dim, int tp, int layers) {
  TensorEntry t;
  t.key = key;
  t.dtype = DType::kBFloat16;
  if (layers > 0) {
    shape.insert(shape.begin(), layers);
    ++dim;
  }
  t.shape = shape;
  for (int l = 0; l < std::max(layers, 1); ++l) {
    for (int r = 0; r < tp; ++r) {
      Box b = FullBox(shape);
      if (layers > 0) {
        b.offsets[0] = l;
        b.sizes[0] = 1;
      }
      if (dim >= 0) {
        b.sizes[dim] = shape[dim] / tp;
        b.offsets[dim] = r * b.sizes[dim];
      } else if (r > 0) {
        continue;  // replicated: stored once
      }
      t.chunks.push_back(StoredChunk{b, StorageLocation{absl::StrCat("__", r, "_0.distcp"), 0, 0, {}}});
    }
  }
  return t;
}

int Main(int argc, char** argv) {
  int target_tp = 8, repeat = 5;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--target-tp")) target_tp = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--repeat")) repeat = std::atoi(argv[++i]);
  }
  const int tp = 8, L = 80, H = 8192, F = 28672, V = 128256;
  CheckpointMetadata md;
  auto add = [&](TensorEntry t) {
    md.tensor_index[t.key] = md.tensors.size();
    md.tensors.push_back(std::move(t));
  };
  // Stacked decoder weights (Megatron torch_dist), [80, ...], 640 chunks each.
  add(Make("decoder.layers.self_attention.linear_qkv.weight", {10240, H}, 0, tp, L));
  add(Make("decoder.layers.self_attention.linear_proj.weight", {H, H}, 1, tp, L));
  add(Make("decoder.layers.mlp.linear_fc1.weight", {2 * F, H}, 0, tp, L));
  add(Make("decoder.layers.mlp.linear_fc2.weight", {H, F}, 1, tp, L));
  add(Make("decoder.layers.self_attention.linear_qkv.layer_norm_weight", {H}, -1, tp, L));
  add(Make("decoder.layers.mlp.linear_fc1.layer_norm_weight", {H}, -1, tp, L));
  add(Make("embedding.word_embeddings.weight", {V, H}, 0, tp, 0));
  add(Make("output_layer.weight", {V, H}, 0, tp, 0));
  add(Make("decoder.final_layernorm.weight", {H}, -1, tp, 0));
  // Per-layer optimizer-like and extra tensors up to ~1,000 keys (each 8 TP chunks).
  for (int i = 0; md.tensors.size() < 1000; ++i) {
    add(Make(absl::StrCat("decoder.layers.", i % L, ".extra.", i, ".weight"), {H, 1024}, i % 2, tp, 0));
  }
  size_t chunks = 0;
  for (const TensorEntry& t : md.tensors) chunks += t.chunks.size();
  auto layout = Layout::Load("megatron", {R"(.*mlp\.linear_fc1\.weight=sections:0:2@stacked)",
                                          R"(.*\.extra\.[0-9]*[02468]\.weight=split:0)", R"(.*\.extra\..*\.weight=split:1)"});
  if (!layout.ok()) {
    std::fprintf(stderr, "%s\n", layout.status().ToString().c_str());
    return 1;
  }
  std::vector<Target> targets;
  for (int r = 0; r < target_tp; ++r) targets.push_back({target_tp, r});
  double best = 1e9;
  size_t ops = 0;
  for (int i = 0; i < repeat; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto plans = PlanReshard(md, *layout, targets, {});
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!plans.ok()) {
      std::fprintf(stderr, "%s\n", plans.status().ToString().c_str());
      return 1;
    }
    ops = 0;
    for (const RankPlan& p : *plans) {
      for (const ShardPlan& s : p.shards) ops += s.ops.size();
    }
    best = std::min(best, ms);
  }
  std::printf("70B-shaped checkpoint: %zu tensors, %zu stored chunks (saved at TP %d, %d stacked layers)\n",
              md.tensors.size(), chunks, tp, L);
  std::printf("planned %d targets (TP %d): %zu copy ops in %.1f ms (best of %d)\n", target_tp, target_tp, ops, best, repeat);
  return 0;
}

}  // namespace
}  // namespace shardcast

int main(int argc, char** argv) { return shardcast::Main(argc, argv); }
