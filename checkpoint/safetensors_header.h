// Parses safetensors headers and the Hugging Face index (`model.safetensors.index.json`) into
// the checkpoint model (metadata.h), so the planner, the reader and everything above them serve
// safetensors exactly as they serve DCP.
//
// A safetensors file is: 8 bytes of little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
// data; a tensor's bytes are [8 + N + begin, 8 + N + end) of the file, dense, C order,
// little-endian. Each tensor becomes a TensorEntry with one StoredChunk (the whole tensor) whose
// location is that range, ItemFormat::kRaw.
//
// Everything here is pure and strict (the input is untrusted; SECURITY.md "Checkpoints"): header
// length bounded and inside the file, JSON depth-limited (common/json), dtypes known, shape ×
// item size == end − begin with overflow checks, data inside the file, no overlapping tensors,
// index file names plain names inside the folder, a key in two files refused. Every refusal is
// InvalidArgument or DataLoss naming the file and the key.
#ifndef SHARDCAST_CHECKPOINT_SAFETENSORS_HEADER_H_
#define SHARDCAST_CHECKPOINT_SAFETENSORS_HEADER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "checkpoint/metadata.h"

namespace shardcast {

// safetensors' own limit on the JSON header.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;
// An index (`*.safetensors.index.json`) larger than this is refused before it is read.
inline constexpr uint64_t kMaxSafetensorsIndexBytes = 64ull << 20;

// One file's header, parsed.
struct SafetensorsFile {
  std::string relative_path;
  std::vector<TensorEntry> tensors;             // in header order
  std::map<std::string, std::string> metadata;  // `__metadata__`
};

// The header length from the first 8 bytes of `file` (`file_size` bytes): DataLoss when the
// file is shorter than 8 bytes or the header passes its end; InvalidArgument above
// kMaxSafetensorsHeaderBytes.
absl::StatusOr<uint64_t> SafetensorsHeaderLength(absl::string_view first8, uint64_t file_size,
                                                 const std::string& file);

// Parses the JSON header of `relative_path` (`file_size` bytes; the header is bytes [8, 8 + n)).
absl::StatusOr<SafetensorsFile> ParseSafetensorsHeader(absl::string_view header, uint64_t file_size,
                                                       const std::string& relative_path);

// An index's weight_map: key -> file. Each file must be a plain name in the folder (no '/', no
// "..", not hidden) ending in ".safetensors".
absl::StatusOr<std::map<std::string, std::string>> ParseSafetensorsIndex(absl::string_view json,
                                                                         const std::string& index_name);

// Joins parsed files into one checkpoint (tensors sorted by key). A key in two files is refused;
// with an index (`weight_map` not null), every key must be in the file the index names and every
// key the index names must exist.
absl::StatusOr<CheckpointMetadata> MergeSafetensorsFiles(std::vector<SafetensorsFile> files,
                                                         const std::map<std::string, std::string>* weight_map,
                                                         const std::string& index_name);

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_SAFETENSORS_HEADER_H_
