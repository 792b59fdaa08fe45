#include "server/ownership.h"

#include <algorithm>
#include <numeric>

namespace shardcast {

std::vector<int> AssignOwners(const std::vector<const TensorEntry*>& tensors, int world_size) {
  std::vector<int> owners(tensors.size(), 0);
  if (world_size <= 1) return owners;
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return tensors[a]->nbytes() > tensors[b]->nbytes(); });
  std::vector<uint64_t> load(world_size, 0);
  for (size_t i : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owners[i] = r;
    load[r] += tensors[i]->nbytes();
  }
  return owners;
}

}  // namespace shardcast
