// Safetensors headers and index → CheckpointMetadata (see safetensors_header.h).
#include "checkpoint/safetensors_header.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/safetensors.h"
#include "common/status_macros.h"
#include "common/text_escape.h"

namespace shardcast {
namespace {

constexpr size_t kMaxRank = 64;

std::string Q(absl::string_view s) { return absl::StrCat("'", EscapeForTerminal(s.substr(0, 200)), "'"); }

absl::Status Bad(const std::string& file, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": tensor ", Q(key), ": ", what));
}

// A JSON integer in [0, INT64_MAX].
bool NonNegative(const Json& j, uint64_t* out) {
  if (j.type() != Json::Type::kInt || j.as_int() < 0) return false;
  *out = static_cast<uint64_t>(j.as_int());
  return true;
}

absl::StatusOr<Shape> ParseShape(const Json* j, const std::string& file, absl::string_view key) {
  if (j == nullptr || !j->is_array()) return Bad(file, key, "'shape' must be an array of integers");
  if (j->size() > kMaxRank) return Bad(file, key, absl::StrCat("rank ", j->size(), " exceeds ", kMaxRank));
  Shape shape;
  for (const Json& d : j->items()) {
    uint64_t v;
    if (!NonNegative(d, &v)) return Bad(file, key, "'shape' holds a value that is not a non-negative integer");
    shape.push_back(static_cast<int64_t>(v));
  }
  return shape;
}

// shape × item size, or an error on overflow past INT64_MAX.
absl::StatusOr<uint64_t> ShapeBytes(const Shape& shape, DType dtype, const std::string& file, absl::string_view key) {
  uint64_t n = ItemSize(dtype);
  for (int64_t s : shape) {
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(s), &n) || n > static_cast<uint64_t>(INT64_MAX)) {
      return Bad(file, key, absl::StrCat("shape ", ShapeToString(shape), " overflows 64-bit byte counts"));
    }
  }
  return n;
}

// One tensor's entry → TensorEntry with one raw chunk at [data_start + begin, data_start + end).
absl::StatusOr<TensorEntry> ParseTensor(const std::string& key, const Json& v, uint64_t data_start,
                                        uint64_t file_size, const std::string& file) {
  if (!v.is_object()) return Bad(file, key, "entry must be an object {dtype, shape, data_offsets}");
  const Json* dt = v.Find("dtype");
  if (dt == nullptr || !dt->is_string()) return Bad(file, key, "'dtype' must be a string");
  absl::StatusOr<DType> dtype = DTypeFromSafetensors(dt->as_string());
  if (!dtype.ok()) return Bad(file, key, dtype.status().message());
  SC_ASSIGN_OR_RETURN(Shape shape, ParseShape(v.Find("shape"), file, key));
  SC_ASSIGN_OR_RETURN(uint64_t nbytes, ShapeBytes(shape, *dtype, file, key));
  const Json* offs = v.Find("data_offsets");
  uint64_t begin, end;
  if (offs == nullptr || !offs->is_array() || offs->size() != 2 || !NonNegative((*offs)[0], &begin) ||
      !NonNegative((*offs)[1], &end)) {
    return Bad(file, key, "'data_offsets' must be [begin, end], two non-negative integers");
  }
  if (end < begin) return Bad(file, key, absl::StrCat("data_offsets [", begin, ", ", end, "] end before they begin"));
  if (end - begin != nbytes) {
    return Bad(file, key, absl::StrCat("data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes but ",
                                       DTypeName(*dtype), " ", ShapeToString(shape), " needs ", nbytes));
  }
  if (end > file_size - data_start) {
    return absl::DataLossError(absl::StrCat(file, ": tensor ", Q(key), ": data [", begin, ", ", end,
                                            ") passes the end of the data (", file_size - data_start,
                                            " bytes; truncated file?)"));
  }
  TensorEntry t;
  t.key = key;
  t.dtype = *dtype;
  t.shape = shape;
  StoredChunk c;
  c.box = FullBox(shape);
  c.location.relative_path = file;
  c.location.offset = data_start + begin;
  c.location.length = nbytes;
  c.location.format = ItemFormat::kRaw;
  t.chunks.push_back(std::move(c));
  return t;
}

absl::StatusOr<std::map<std::string, std::string>> ParseFileMetadata(const Json& v, const std::string& file) {
  if (!v.is_object()) return absl::InvalidArgumentError(absl::StrCat(file, ": '__metadata__' must be an object"));
  std::map<std::string, std::string> out;
  for (const auto& [k, s] : v.members()) {
    if (!s.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": '__metadata__' entry ", Q(k), " must be a string (safetensors allows only strings)"));
    }
    out[k] = s.as_string();
  }
  return out;
}

// No two tensors of a file share a byte.
absl::Status CheckNoOverlap(const std::vector<TensorEntry>& tensors, const std::string& file) {
  std::vector<std::tuple<uint64_t, uint64_t, const std::string*>> spans;
  for (const TensorEntry& t : tensors) {
    const StorageLocation& l = t.chunks[0].location;
    if (l.length > 0) spans.emplace_back(l.offset, l.offset + l.length, &t.key);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (std::get<0>(spans[i]) < std::get<1>(spans[i - 1])) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": tensors ", Q(*std::get<2>(spans[i - 1])), " and ",
                                                     Q(*std::get<2>(spans[i])), " overlap in the file"));
    }
  }
  return absl::OkStatus();
}

// A weight_map file name: a plain name in the folder.
bool PlainSafetensorsName(absl::string_view name) {
  return !name.empty() && name[0] != '.' && !absl::StrContains(name, '/') && !absl::StrContains(name, '\0') &&
         absl::EndsWith(name, ".safetensors");
}

}  // namespace

absl::StatusOr<uint64_t> SafetensorsHeaderLength(absl::string_view first8, uint64_t file_size,
                                                 const std::string& file) {
  if (first8.size() < 8 || file_size < 8) {
    return absl::DataLossError(absl::StrCat(file, ": ", file_size, " bytes is too short for a safetensors file"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(first8[i]);
  if (n > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": header length ", n, " exceeds safetensors' limit of ",
                                                   kMaxSafetensorsHeaderBytes, " bytes (not a safetensors file?)"));
  }
  if (n > file_size - 8) {
    return absl::DataLossError(absl::StrCat(file, ": header length ", n, " passes the end of the file (",
                                            file_size, " bytes; truncated?)"));
  }
  return n;
}

absl::StatusOr<SafetensorsFile> ParseSafetensorsHeader(absl::string_view header, uint64_t file_size,
                                                       const std::string& relative_path) {
  const std::string& file = relative_path;
  absl::StatusOr<Json> j = Json::Parse(header);
  if (!j.ok()) return absl::InvalidArgumentError(absl::StrCat(file, ": header is not JSON: ", j.status().message()));
  if (!j->is_object()) return absl::InvalidArgumentError(absl::StrCat(file, ": header must be a JSON object"));
  if (file_size < 8 + header.size()) {
    return absl::DataLossError(absl::StrCat(file, ": header passes the end of the file"));
  }
  const uint64_t data_start = 8 + header.size();
  SafetensorsFile out;
  out.relative_path = relative_path;
  for (const auto& [key, v] : j->members()) {
    if (key == "__metadata__") {
      SC_ASSIGN_OR_RETURN(out.metadata, ParseFileMetadata(v, file));
      continue;
    }
    if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(file, ": a tensor has an empty name"));
    SC_ASSIGN_OR_RETURN(TensorEntry t, ParseTensor(key, v, data_start, file_size, file));
    out.tensors.push_back(std::move(t));
  }
  SC_RETURN_IF_ERROR(CheckNoOverlap(out.tensors, file));
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> ParseSafetensorsIndex(absl::string_view json,
                                                                         const std::string& index_name) {
  absl::StatusOr<Json> j = Json::Parse(json);
  if (!j.ok()) return absl::InvalidArgumentError(absl::StrCat(index_name, ": not JSON: ", j.status().message()));
  const Json* wm = j->is_object() ? j->Find("weight_map") : nullptr;
  if (wm == nullptr || !wm->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_name, ": needs an object 'weight_map' {key: file}"));
  }
  std::map<std::string, std::string> out;
  for (const auto& [key, f] : wm->members()) {
    if (!f.is_string() || !PlainSafetensorsName(f.as_string())) {
      return absl::InvalidArgumentError(absl::StrCat(
          index_name, ": weight_map maps ", Q(key), " to ", f.is_string() ? Q(f.as_string()) : "a non-string",
          "; expected a file name inside the folder ending in .safetensors (no '/', no '..', not hidden)"));
    }
    out[key] = f.as_string();
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(index_name, ": weight_map is empty"));
  return out;
}

absl::StatusOr<CheckpointMetadata> MergeSafetensorsFiles(std::vector<SafetensorsFile> files,
                                                         const std::map<std::string, std::string>* weight_map,
                                                         const std::string& index_name) {
  CheckpointMetadata md;
  std::map<std::string, std::string> file_of;
  for (SafetensorsFile& f : files) {
    for (TensorEntry& t : f.tensors) {
      auto [it, added] = file_of.emplace(t.key, f.relative_path);
      if (!added) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", Q(t.key), " is in two files: ", it->second, " and ", f.relative_path));
      }
      if (weight_map != nullptr) {
        auto w = weight_map->find(t.key);
        if (w == weight_map->end() || w->second != f.relative_path) {
          return absl::InvalidArgumentError(absl::StrCat(
              f.relative_path, ": tensor ", Q(t.key), " is not where ", index_name, " says (",
              w == weight_map->end() ? "it is not listed" : absl::StrCat("it names ", w->second),
              "); regenerate the index"));
        }
      }
      md.tensors.push_back(std::move(t));
    }
    if (!f.metadata.empty()) md.file_metadata[f.relative_path] = std::move(f.metadata);
  }
  if (weight_map != nullptr) {
    for (const auto& [key, file] : *weight_map) {
      if (!file_of.count(key)) {
        return absl::DataLossError(
            absl::StrCat(index_name, " lists tensor ", Q(key), " in ", file, ", but that file does not hold it"));
      }
    }
  }
  std::sort(md.tensors.begin(), md.tensors.end(),
            [](const TensorEntry& a, const TensorEntry& b) { return a.key < b.key; });
  for (size_t i = 0; i < md.tensors.size(); ++i) md.tensor_index[md.tensors[i].key] = i;
  return md;
}

}  // namespace shardcast
