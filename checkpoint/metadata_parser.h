// Decodes a DCP `.metadata` pickle (PyTorch 1.13 through 2.14, Megatron-Core torch_dist) into
// CheckpointMetadata, through the restricted unpickler and an allow-list of the DCP classes.
//
// Pure: takes the file's bytes, does no I/O. Besides decoding it validates what a reader relies
// on, so that later stages can trust the model:
//  - every chunk lies inside its tensor's shape and has a storage_data entry;
//  - a tensor's chunks neither overlap nor leave holes (they tile the tensor exactly);
//  - element counts and byte sizes do not overflow;
//  - only known stream transforms are named.
// Every error names the key and what was wrong (InvalidArgument; Unimplemented for a known
// but unsupported feature such as an unknown transform).
#ifndef SHARDCAST_CHECKPOINT_METADATA_PARSER_H_
#define SHARDCAST_CHECKPOINT_METADATA_PARSER_H_

#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "checkpoint/metadata.h"

namespace shardcast {

// `source` names the file in error messages.
absl::StatusOr<CheckpointMetadata> ParseMetadata(absl::string_view pickle_bytes,
                                                 const std::string& source = ".metadata");

// Checks that `t`'s chunks lie inside its shape and tile it exactly (no overlap, no hole) in
// O(n 2^k) for n chunks sharded over k dims (signed corner counting; see the .cc); refused
// beyond 2^23 corner updates. InvalidArgument naming the key
// and, when one is found cheaply, the two overlapping chunks. ParseMetadata calls it per tensor.
absl::Status ValidateChunkTiling(const TensorEntry& t, const std::string& source);

// The globals a `.metadata` pickle may reference (exposed for tests and the fuzz target).
const absl::flat_hash_set<std::string>& MetadataAllowedGlobals();

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_METADATA_PARSER_H_
