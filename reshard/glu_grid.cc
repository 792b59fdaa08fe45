// GLU fc1 recognition from the stored chunk grid (see glu_grid.h).
#include "reshard/glu_grid.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"

namespace shardcast {
namespace {

// The number of equal parts the chunks cut dim `d` into: every chunk spans whole dims except
// `d` and `free_dim` (the layer axis, or -1), and the distinct [offset, end) intervals along d
// are k consecutive parts of n/k each. nullopt for any other grid.
std::optional<int64_t> EqualPartsAlong(const TensorEntry& t, int d, int free_dim) {
  const int rank = static_cast<int>(t.shape.size());
  if (d < 0 || d >= rank || t.chunks.empty()) return std::nullopt;
  std::vector<std::pair<int64_t, int64_t>> intervals;
  for (const StoredChunk& c : t.chunks) {
    if (static_cast<int>(c.box.rank()) != rank) return std::nullopt;
    for (int i = 0; i < rank; ++i) {
      if (i == d || i == free_dim) continue;
      if (c.box.offsets[i] != 0 || c.box.sizes[i] != t.shape[i]) return std::nullopt;
    }
    intervals.emplace_back(c.box.offsets[d], c.box.sizes[d]);
  }
  std::sort(intervals.begin(), intervals.end());
  intervals.erase(std::unique(intervals.begin(), intervals.end()), intervals.end());
  const int64_t k = static_cast<int64_t>(intervals.size());
  const int64_t n = t.shape[d];
  if (n <= 0 || n % k != 0) return std::nullopt;
  for (int64_t i = 0; i < k; ++i) {
    if (intervals[i].first != i * (n / k) || intervals[i].second != n / k) return std::nullopt;
  }
  return k;
}

}  // namespace

std::string Fc2SiblingKey(const std::string& fc1_key) {
  const std::string kFc1 = "linear_fc1.";
  if (!absl::EndsWith(fc1_key, ".weight") && !absl::EndsWith(fc1_key, ".bias")) return "";
  const size_t p = fc1_key.rfind(kFc1);
  if (p == std::string::npos) return "";
  const std::string param = fc1_key.substr(p + kFc1.size());
  if (param != "weight" && param != "bias") return "";
  return fc1_key.substr(0, p) + "linear_fc2.weight";
}

GluGrid ClassifyGluGrid(const CheckpointMetadata& metadata, const TensorEntry& fc1, bool stacked) {
  GluGrid out;
  const std::string sibling = Fc2SiblingKey(fc1.key);
  const TensorEntry* fc2 = sibling.empty() ? nullptr : metadata.FindTensor(sibling);
  if (fc2 == nullptr) return out;
  const int layer_dim = stacked ? 0 : -1;
  const int lead = stacked ? 1 : 0;
  const std::optional<int64_t> tp = EqualPartsAlong(*fc2, 1 + lead, layer_dim);
  const std::optional<int64_t> parts = EqualPartsAlong(fc1, lead, layer_dim);
  if (!tp || !parts) return out;
  out.saved_tp = static_cast<int>(*tp);
  if (*parts == 2 * *tp) {
    out.kind = GluGrid::Kind::kGated;
  } else if (*parts == *tp && *tp > 1) {
    out.kind = GluGrid::Kind::kPlain;
  }
  return out;
}

}  // namespace shardcast
