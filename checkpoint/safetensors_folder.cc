// Reading safetensors headers from a checkpoint folder (see safetensors_folder.h).
#include "checkpoint/safetensors_folder.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "checkpoint/safetensors_header.h"
#include "common/status_macros.h"

namespace shardcast {
namespace {

// Parse errors name the file relative to the folder: say which folder.
absl::Status InFolder(const CheckpointFiles& files, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(files.dir(), "/", s.message()));
}

absl::StatusOr<SafetensorsFile> ReadHeader(CheckpointFiles& files, const std::string& name) {
  SC_ASSIGN_OR_RETURN(uint64_t size, files.FileSize(name));
  char first8[8] = {};
  if (size >= 8) SC_RETURN_IF_ERROR(files.ReadAt(name, 0, 8, first8));
  absl::StatusOr<uint64_t> n = SafetensorsHeaderLength(absl::string_view(first8, size >= 8 ? 8 : 0), size, name);
  if (!n.ok()) return InFolder(files, n.status());
  std::string header(*n, '\0');  // n <= min(file size, 100 MB): checked above
  SC_RETURN_IF_ERROR(files.ReadAt(name, 8, *n, header.data()));
  absl::StatusOr<SafetensorsFile> f = ParseSafetensorsHeader(header, size, name);
  if (!f.ok()) return InFolder(files, f.status());
  return f;
}

}  // namespace

absl::StatusOr<CheckpointMetadata> LoadSafetensorsMetadata(CheckpointFiles& files, const ResolvedCheckpoint& resolved) {
  std::vector<std::string> names = resolved.safetensors_files;
  std::map<std::string, std::string> weight_map;
  const bool indexed = !resolved.safetensors_index.empty();
  if (indexed) {
    SC_ASSIGN_OR_RETURN(std::string text, files.ReadFile(resolved.safetensors_index, kMaxSafetensorsIndexBytes));
    absl::StatusOr<std::map<std::string, std::string>> wm = ParseSafetensorsIndex(text, resolved.safetensors_index);
    if (!wm.ok()) return InFolder(files, wm.status());
    weight_map = *std::move(wm);
    std::set<std::string> unique;
    for (const auto& [key, file] : weight_map) unique.insert(file);
    names.assign(unique.begin(), unique.end());
  }
  if (names.empty()) return absl::NotFoundError(absl::StrCat(files.dir(), ": no safetensors files to read"));
  std::vector<SafetensorsFile> parsed;
  for (const std::string& name : names) {
    absl::StatusOr<uint64_t> size = files.FileSize(name);
    if (indexed && absl::IsNotFound(size.status())) {
      return absl::NotFoundError(absl::StrCat(files.dir(), "/", resolved.safetensors_index, " names ", name,
                                              ", which is missing (incomplete download?)"));
    }
    SC_ASSIGN_OR_RETURN(SafetensorsFile f, ReadHeader(files, name));
    parsed.push_back(std::move(f));
  }
  absl::StatusOr<CheckpointMetadata> md =
      MergeSafetensorsFiles(std::move(parsed), indexed ? &weight_map : nullptr, resolved.safetensors_index);
  if (!md.ok()) return absl::Status(md.status().code(), absl::StrCat(files.dir(), ": ", md.status().message()));
  return md;
}

}  // namespace shardcast
