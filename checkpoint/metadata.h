// The model of a DCP checkpoint's `.metadata`: every key with its dtype, global shape, stored
// chunks and where each chunk's bytes live. Plain data: no I/O, no Python objects.
#ifndef SHARDCAST_CHECKPOINT_METADATA_H_
#define SHARDCAST_CHECKPOINT_METADATA_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/box.h"
#include "common/dtype.h"

namespace shardcast {

// How a stored item's bytes are laid out.
enum class ItemFormat {
  kTorchSave,  // a torch.save ZIP record (DCP)
  kRaw,        // the chunk's elements themselves, dense, C order, little-endian (safetensors)
};

// Where one stored item lives: bytes [offset, offset + length) of `relative_path`, optionally
// wrapped by stream transforms (e.g. "stream.zstd/1"), innermost first.
struct StorageLocation {
  std::string relative_path;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::vector<std::string> transforms;
  ItemFormat format = ItemFormat::kTorchSave;
};

// One saved shard of a tensor: its box in the global index space and its torch.save record.
struct StoredChunk {
  Box box;
  StorageLocation location;
};

struct TensorEntry {
  std::string key;
  DType dtype = DType::kFloat32;
  Shape shape;
  std::vector<StoredChunk> chunks;

  uint64_t nbytes() const;  // global shape × item size (the shape is validated not to overflow)
};

// A non-tensor entry (BytesStorageMetadata): an opaque blob, usually a torch.save'd object.
struct BytesEntry {
  std::string key;
  StorageLocation location;
};

struct CheckpointMetadata {
  std::vector<TensorEntry> tensors;      // in `.metadata` order
  std::vector<BytesEntry> bytes_entries;
  std::string version;                   // Metadata.version ("" when absent: before ~2.9)
  std::string checkpoint_id;             // StorageMeta.checkpoint_id as written (informational)
  // safetensors only: each file's `__metadata__` (string to string), by file (informational).
  std::map<std::string, std::map<std::string, std::string>> file_metadata;

  // nullptr when absent.
  const TensorEntry* FindTensor(const std::string& key) const;
  const BytesEntry* FindBytes(const std::string& key) const;

  std::map<std::string, size_t> tensor_index;  // key -> position in `tensors`
};

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_METADATA_H_
