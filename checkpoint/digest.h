// SHA-256 digests of whole tensors in C order, as `expected.json` and `shardcast inspect
// --digest` define them: a tensor's bytes, row-major, little-endian, its dtype's item size.
#ifndef SHARDCAST_CHECKPOINT_DIGEST_H_
#define SHARDCAST_CHECKPOINT_DIGEST_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/reader.h"

namespace shardcast {

// Reads the tensors in batches of at most `batch_bytes` (a larger tensor is read alone) and
// returns one hex digest per tensor. `progress(bytes)` is called as tensors complete.
absl::StatusOr<std::vector<std::string>> DigestTensors(CheckpointReader& reader,
                                                       const std::vector<const TensorEntry*>& tensors,
                                                       uint64_t batch_bytes = 1ull << 30,
                                                       const std::function<void(uint64_t)>& progress = nullptr);

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_DIGEST_H_
