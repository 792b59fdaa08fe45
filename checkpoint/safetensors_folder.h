// Reads the headers of a safetensors checkpoint (one file, a folder of files, or an index and the
// files it names) through CheckpointFiles, so the same path safety applies as to DCP: files only
// inside the folder, regular files only, never a blocking open.
#ifndef SHARDCAST_CHECKPOINT_SAFETENSORS_FOLDER_H_
#define SHARDCAST_CHECKPOINT_SAFETENSORS_FOLDER_H_

#include "absl/status/statusor.h"
#include "checkpoint/metadata.h"
#include "checkpoint/resolve.h"
#include "checkpoint/storage.h"

namespace shardcast {

// `resolved.format` must be kSafetensors. Reads the index (if any, at most
// kMaxSafetensorsIndexBytes) and each file's header (at most kMaxSafetensorsHeaderBytes), then
// parses and joins them (safetensors_header.h). Errors name the file and the key.
absl::StatusOr<CheckpointMetadata> LoadSafetensorsMetadata(CheckpointFiles& files, const ResolvedCheckpoint& resolved);

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_SAFETENSORS_FOLDER_H_
