#include "checkpoint/metadata_parser.h"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "checkpoint/pickle.h"
#include "common/status_macros.h"

namespace shardcast {

using Kind = PickleValue::Kind;

uint64_t TensorEntry::nbytes() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return static_cast<uint64_t>(n) * ItemSize(dtype);
}

const TensorEntry* CheckpointMetadata::FindTensor(const std::string& key) const {
  auto it = tensor_index.find(key);
  return it == tensor_index.end() ? nullptr : &tensors[it->second];
}

const BytesEntry* CheckpointMetadata::FindBytes(const std::string& key) const {
  for (const BytesEntry& e : bytes_entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

namespace {

constexpr const char* kDTypeNames[] = {
    "float16", "float32", "float64", "bfloat16", "complex32", "complex64", "complex128", "uint8", "int8",
    "int16", "int32", "int64", "uint16", "uint32", "uint64", "bool", "float8_e4m3fn", "float8_e5m2",
    "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "qint8", "quint8", "qint32",
    "quint4x2", "quint2x4", "bits1x8", "bits2x4", "bits4x2", "bits8", "bits16"};

absl::flat_hash_set<std::string> BuildAllowList() {
  absl::flat_hash_set<std::string> s;
  for (const char* mod : {"torch.distributed.checkpoint.metadata", "torch.distributed._shard.checkpoint.metadata"}) {
    for (const char* cls : {"Metadata", "TensorStorageMetadata", "ChunkStorageMetadata", "BytesStorageMetadata",
                            "MetadataIndex", "StorageMeta", "TensorProperties", "_MEM_FORMAT_ENCODING"}) {
      s.insert(absl::StrCat(mod, ".", cls));
    }
  }
  s.insert("torch.distributed._shard.sharded_tensor.metadata.TensorProperties");
  s.insert("torch.distributed._shard.sharded_tensor.metadata.MEM_FORMAT_ENCODING");
  s.insert("torch.distributed.checkpoint.filesystem._StorageInfo");
  s.insert("torch.distributed._shard.checkpoint.filesystem._StorageInfo");
  s.insert("megatron.core.dist_checkpointing.strategies.torch.MCoreMetadata");
  s.insert("torch.Size");
  s.insert("torch.serialization._get_layout");
  s.insert("builtins.getattr");
  for (const char* p : {"pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath", "pathlib._local.PosixPath",
                        "pathlib._local.WindowsPath", "pathlib._local.PurePosixPath"}) {
    s.insert(p);
  }
  s.insert("collections.OrderedDict");
  for (const char* d : kDTypeNames) s.insert(absl::StrCat("torch.", d));
  return s;
}

class Decoder {
 public:
  explicit Decoder(const std::string& source) : source_(source) {}

  absl::Status Err(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", what));
  }

  // The class name of an object node ("TensorStorageMetadata"), or "" if not an object.
  static absl::string_view ClassName(const PickleValue* v) {
    if (v == nullptr || (v->kind != Kind::kNewObj && v->kind != Kind::kCall) || v->callable == nullptr) return "";
    return v->callable->name;
  }

  absl::StatusOr<int64_t> Int(const PickleValue* v, absl::string_view what) const {
    if (v == nullptr || v->kind != Kind::kInt) {
      return Err(absl::StrCat(what, " should be an int, found ", v ? PickleDebugString(v) : "nothing"));
    }
    return v->i;
  }

  absl::StatusOr<std::string> Str(const PickleValue* v, absl::string_view what) const {
    if (v == nullptr || v->kind != Kind::kString) {
      return Err(absl::StrCat(what, " should be a str, found ", v ? PickleDebugString(v) : "nothing"));
    }
    return v->str;
  }

  // torch.Size((a, b, ...)) or a plain tuple/list of ints.
  absl::StatusOr<Shape> SizeTuple(const PickleValue* v, absl::string_view what) const {
    const PickleValue* t = v;
    if (v != nullptr && v->kind == Kind::kCall && v->callable->IsGlobal("torch", "Size")) {
      if (v->args->items.size() != 1) return Err(absl::StrCat(what, ": torch.Size takes one tuple"));
      t = v->args->items[0];
    }
    if (t == nullptr || (t->kind != Kind::kTuple && t->kind != Kind::kList)) {
      return Err(absl::StrCat(what, " should be a torch.Size, found ", v ? PickleDebugString(v) : "nothing"));
    }
    Shape out;
    for (const PickleValue* e : t->items) {
      SC_ASSIGN_OR_RETURN(int64_t x, Int(e, what));
      out.push_back(x);
    }
    return out;
  }

  // The BUILD state of an object, as a dict; an empty dict stands in for "no state".
  absl::StatusOr<const PickleValue*> StateDict(const PickleValue* obj, absl::string_view what) const {
    if (obj->state == nullptr) return &empty_dict_;
    if (obj->state->kind != Kind::kDict) {
      return Err(absl::StrCat(what, ": state should be a dict, found ", PickleDebugString(obj->state)));
    }
    return obj->state;
  }

  absl::StatusOr<DType> DTypeOf(const PickleValue* props, const std::string& key) const {
    if (ClassName(props) != "TensorProperties") {
      return Err(absl::StrCat("key '", key, "': properties should be TensorProperties, found ", PickleDebugString(props)));
    }
    const PickleValue* dtype = nullptr;
    const PickleValue* st = props->state;
    if (st != nullptr && st->kind == Kind::kTuple && !st->items.empty()) {
      dtype = st->items[0];  // (dtype, layout, requires_grad, memory_format, pin_memory[, ...])
    } else if (st != nullptr && st->kind == Kind::kDict) {
      dtype = st->DictGet("dtype");
    } else if (props->args != nullptr && !props->args->items.empty()) {
      dtype = props->args->items[0];
    }
    if (dtype == nullptr || dtype->kind != Kind::kGlobal || dtype->str != "torch") {
      return Err(absl::StrCat("key '", key, "': cannot find the dtype in ", PickleDebugString(props)));
    }
    absl::StatusOr<DType> d = DTypeFromName(dtype->name);
    if (!d.ok()) {
      return absl::UnimplementedError(
          absl::StrCat(source_, ": key '", key, "' has dtype torch.", dtype->name, ", which shardcast does not support"));
    }
    return *d;
  }

  absl::StatusOr<StorageLocation> Location(const PickleValue* info, absl::string_view what) const {
    if (ClassName(info) != "_StorageInfo") {
      return Err(absl::StrCat(what, ": storage entry should be _StorageInfo, found ", PickleDebugString(info)));
    }
    SC_ASSIGN_OR_RETURN(const PickleValue* st, StateDict(info, what));
    StorageLocation loc;
    SC_ASSIGN_OR_RETURN(loc.relative_path, Str(st->DictGet("relative_path"), absl::StrCat(what, ": relative_path")));
    SC_ASSIGN_OR_RETURN(int64_t off, Int(st->DictGet("offset"), absl::StrCat(what, ": offset")));
    SC_ASSIGN_OR_RETURN(int64_t len, Int(st->DictGet("length"), absl::StrCat(what, ": length")));
    if (off < 0 || len < 0) return Err(absl::StrCat(what, ": negative offset ", off, " or length ", len));
    loc.offset = static_cast<uint64_t>(off);
    loc.length = static_cast<uint64_t>(len);
    const PickleValue* td = st->DictGet("transform_descriptors");
    if (td != nullptr && td->kind != Kind::kNone) {
      if (td->kind != Kind::kList && td->kind != Kind::kTuple) {
        return Err(absl::StrCat(what, ": transform_descriptors should be a list"));
      }
      for (const PickleValue* d : td->items) {
        SC_ASSIGN_OR_RETURN(std::string name, Str(d, absl::StrCat(what, ": transform descriptor")));
        if (name != "stream.zstd/1" && name != "stream.zstd") {
          return absl::UnimplementedError(absl::StrCat(source_, ": ", what, " uses stream transform '", name,
                                                       "'; shardcast supports only stream.zstd/1"));
        }
        loc.transforms.push_back(name);
      }
    }
    // Lexical safety; the storage layer also refuses symlinks that leave the folder.
    const std::string& p = loc.relative_path;
    if (p.empty() || p[0] == '/' || p.find('\0') != std::string::npos) {
      return absl::PermissionDeniedError(absl::StrCat(source_, ": ", what, ": relative_path '", p,
                                                      "' is not a path inside the checkpoint folder"));
    }
    for (absl::string_view part : absl::StrSplit(p, '/')) {
      if (part == "..") {
        return absl::PermissionDeniedError(absl::StrCat(source_, ": ", what, ": relative_path '", p,
                                                        "' escapes the checkpoint folder"));
      }
    }
    return loc;
  }

  absl::StatusOr<CheckpointMetadata> Decode(const PickleValue* root);

 private:
  using Locations = std::map<std::string, StorageLocation>;  // by IndexKey(fqn, offsets)
  // storage_data: MetadataIndex(fqn, offset) -> _StorageInfo.
  absl::StatusOr<Locations> StorageData(const PickleValue* sd) const;
  // One TensorStorageMetadata entry with its chunks (each with its storage location).
  absl::StatusOr<TensorEntry> Tensor(const std::string& key, const PickleValue* v, const Locations& locations) const;
  absl::StatusOr<StoredChunk> Chunk(const std::string& key, const PickleValue* c, const Locations& locations) const;
  // The optional `version` and `storage_meta.checkpoint_id`.
  static void ReadVersionAndId(const PickleValue* st, CheckpointMetadata* md);

  std::string source_;
  PickleValue empty_dict_{Kind::kDict};
};

std::string IndexKey(const std::string& fqn, const std::optional<Shape>& offsets) {
  if (!offsets) return absl::StrCat(fqn, "\n-");
  return absl::StrCat(fqn, "\n", absl::StrJoin(*offsets, ","));
}

// Looks for one pair of overlapping chunks to name in an error: sweeps along the dim with the
// most distinct offsets, comparing a chunk only with those that start before it ends there.
// Quadratic on adversarial layouts, so it gives up after `budget` comparisons.
std::optional<std::pair<const StoredChunk*, const StoredChunk*>> FindOverlap(
    std::vector<const StoredChunk*> sorted, size_t rank, int64_t budget) {
  if (rank == 0) {
    if (sorted.size() >= 2) return std::make_pair(sorted[0], sorted[1]);
    return std::nullopt;
  }
  size_t sweep = 0;
  size_t best = 0;
  for (size_t d = 0; d < rank; ++d) {
    absl::flat_hash_set<int64_t> distinct;
    for (const StoredChunk* c : sorted) distinct.insert(c->box.offsets[d]);
    if (distinct.size() > best) {
      best = distinct.size();
      sweep = d;
    }
  }
  std::sort(sorted.begin(), sorted.end(), [sweep](const StoredChunk* a, const StoredChunk* b) {
    return a->box.offsets[sweep] < b->box.offsets[sweep];
  });
  for (size_t i = 0; i < sorted.size(); ++i) {
    for (size_t j = i + 1; j < sorted.size(); ++j) {
      if (sorted[j]->box.offsets[sweep] >= sorted[i]->box.offsets[sweep] + sorted[i]->box.sizes[sweep]) break;
      if (--budget < 0) return std::nullopt;
      if (Overlaps(sorted[i]->box, sorted[j]->box)) return std::make_pair(sorted[i], sorted[j]);
    }
  }
  return std::nullopt;
}

// Every chunk has the tensor's rank and lies inside its shape, and the chunks' element counts
// add up to exactly the tensor's (no overflow). Returns the tensor's element count.
absl::StatusOr<int64_t> CheckChunkCounts(const TensorEntry& t, const std::string& source) {
  auto err = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": key '", t.key, "': ", what));
  };
  SC_ASSIGN_OR_RETURN(int64_t numel, NumElements(t.shape));
  int64_t item = static_cast<int64_t>(ItemSize(t.dtype));
  int64_t nbytes;
  if (__builtin_mul_overflow(numel, item, &nbytes)) return err("byte size overflows");
  if (t.chunks.empty()) return err("has no stored chunks");
  int64_t covered = 0;
  for (const StoredChunk& c : t.chunks) {
    if (c.box.rank() != t.shape.size() || c.box.offsets.size() != t.shape.size()) {
      return err(absl::StrCat("chunk ", BoxToString(c.box), " has rank ", c.box.rank(), " but the tensor has shape ",
                              ShapeToString(t.shape)));
    }
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (c.box.offsets[d] < 0 || c.box.sizes[d] < 0 || c.box.offsets[d] > t.shape[d] ||
          c.box.sizes[d] > t.shape[d] - c.box.offsets[d]) {
        return err(absl::StrCat("chunk ", BoxToString(c.box), " lies outside the shape ", ShapeToString(t.shape)));
      }
    }
    SC_ASSIGN_OR_RETURN(int64_t n, NumElements(c.box.sizes));
    if (__builtin_add_overflow(covered, n, &covered) || covered > numel) {
      return err(absl::StrCat("chunks hold more elements than the shape ", ShapeToString(t.shape),
                              " (overlapping or duplicate chunks)"));
    }
  }
  if (covered != numel) {
    return err(absl::StrCat("chunks cover ", covered, " of ", numel, " elements of shape ", ShapeToString(t.shape),
                            " (missing chunks)"));
  }
  return numel;
}

// The dims some chunk does not span fully.
std::vector<size_t> ShardedDims(const std::vector<const StoredChunk*>& chunks, const Shape& shape) {
  std::vector<size_t> dims;
  for (size_t d = 0; d < shape.size(); ++d) {
    for (const StoredChunk* c : chunks) {
      if (c->box.offsets[d] != 0 || c->box.sizes[d] != shape[d]) {
        dims.push_back(d);
        break;
      }
    }
  }
  return dims;
}

// The signed corner counts (over `dims`) of the chunks minus those of the whole tensor, zeros
// left out: empty if and only if the chunks tile the tensor.
absl::flat_hash_map<std::vector<int64_t>, int64_t> NetCorners(const std::vector<const StoredChunk*>& chunks,
                                                              const Shape& shape, const std::vector<size_t>& dims) {
  absl::flat_hash_map<std::vector<int64_t>, int64_t> net;
  net.reserve(std::min<size_t>(chunks.size() << dims.size(), size_t{1} << 16));  // grows past that if needed
  std::vector<int64_t> corner(dims.size());
  auto add_corners = [&](const Shape& offsets, const Shape& sizes, int64_t weight) {
    for (uint32_t mask = 0; mask < (1u << dims.size()); ++mask) {
      int64_t sign = weight;
      for (size_t k = 0; k < dims.size(); ++k) {
        const bool upper = (mask >> k) & 1;
        corner[k] = offsets[dims[k]] + (upper ? sizes[dims[k]] : 0);
        if (upper) sign = -sign;
      }
      auto it = net.try_emplace(corner, 0).first;
      if ((it->second += sign) == 0) net.erase(it);
    }
  };
  for (const StoredChunk* c : chunks) add_corners(c->box.offsets, c->box.sizes, 1);
  add_corners(Shape(shape.size(), 0), shape, -1);
  return net;
}

}  // namespace

// Exact tiling in O(n 2^k) (hash map) for n chunks varying in k dims, by signed corners: a box
// [a, b) is the sum over its 2^k corners p (each coordinate a_d or b_d) of
// (-1)^(number of b_d) * [x >= p]. These orthant indicators are linearly independent, so the
// chunks' indicators sum to the tensor's indicator (every element stored exactly once) if and
// only if the signed corner counts of the chunks equal those of the whole tensor. Dims that
// every chunk spans fully are left out (they change nothing), so k is the number of sharded dims.
absl::Status ValidateChunkTiling(const TensorEntry& t, const std::string& source) {
  auto err = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": key '", t.key, "': ", what));
  };
  SC_ASSIGN_OR_RETURN(const int64_t numel, CheckChunkCounts(t, source));
  // Empty chunks store nothing and overlap nothing.
  std::vector<const StoredChunk*> nonempty;
  for (const StoredChunk& c : t.chunks) {
    bool empty = false;
    for (int64_t x : c.box.sizes) empty |= (x == 0);
    if (!empty) nonempty.push_back(&c);
  }
  if (numel == 0) return absl::OkStatus();
  const std::vector<size_t> dims = ShardedDims(nonempty, t.shape);
  // n chunks cost n * 2^k corner updates. Real grids shard one or two dims; a grid beyond this
  // work (e.g. 65536 one-element chunks of a [2]^16 tensor) is refused, not validated slowly.
  constexpr size_t kMaxCornerDims = 16;
  constexpr uint64_t kMaxCornerWork = uint64_t{1} << 23;
  if (dims.size() > kMaxCornerDims || (static_cast<uint64_t>(nonempty.size()) << dims.size()) > kMaxCornerWork) {
    return err(absl::StrCat(nonempty.size(), " chunks sharded over ", dims.size(),
                            " dims: more than shardcast validates (chunks x 2^dims at most ", kMaxCornerWork, ")"));
  }
  const absl::flat_hash_map<std::vector<int64_t>, int64_t> net = NetCorners(nonempty, t.shape, dims);
  if (net.empty()) return absl::OkStatus();
  // Same element count but not a tiling: some elements are stored twice, as many not at all.
  if (auto pair = FindOverlap(nonempty, t.shape.size(), 1 << 22)) {
    return err(absl::StrCat("chunks overlap: ", BoxToString(pair->first->box), " and ", BoxToString(pair->second->box)));
  }
  std::vector<std::string> where;
  for (size_t k = 0; k < dims.size(); ++k) where.push_back(absl::StrCat("dim ", dims[k], " = ", net.begin()->first[k]));
  return err(absl::StrCat("chunks overlap (and leave as many elements uncovered); a chunk corner at ",
                          absl::StrJoin(where, ", "), " does not fit"));
}

namespace {

absl::StatusOr<CheckpointMetadata> Decoder::Decode(const PickleValue* root) {
  absl::string_view cls = ClassName(root);
  if (cls != "Metadata" && cls != "MCoreMetadata") {
    return Err(absl::StrCat("top-level object should be a DCP Metadata, found ", PickleDebugString(root)));
  }
  SC_ASSIGN_OR_RETURN(const PickleValue* st, StateDict(root, "Metadata"));
  const PickleValue* sdm = st->DictGet("state_dict_metadata");
  const PickleValue* sd = st->DictGet("storage_data");
  if (sdm == nullptr || sdm->kind != Kind::kDict) return Err("Metadata.state_dict_metadata is missing or not a dict");
  if (sd == nullptr || sd->kind != Kind::kDict) {
    return Err("Metadata.storage_data is missing or not a dict (not written by FileSystemWriter?)");
  }
  SC_ASSIGN_OR_RETURN(const Locations locations, StorageData(sd));
  CheckpointMetadata md;
  for (const auto& [k, v] : sdm->entries) {
    SC_ASSIGN_OR_RETURN(std::string key, Str(k, "state_dict_metadata key"));
    absl::string_view kind = ClassName(v);
    if (kind == "BytesStorageMetadata") {
      auto it = locations.find(IndexKey(key, std::nullopt));
      if (it == locations.end()) return Err(absl::StrCat("key '", key, "' (bytes) has no storage_data entry"));
      md.bytes_entries.push_back(BytesEntry{key, it->second});
      continue;
    }
    if (kind != "TensorStorageMetadata") {
      return Err(absl::StrCat("key '", key, "': unknown storage metadata ", PickleDebugString(v)));
    }
    SC_ASSIGN_OR_RETURN(TensorEntry t, Tensor(key, v, locations));
    SC_RETURN_IF_ERROR(ValidateChunkTiling(t, source_));
    if (md.tensor_index.count(key)) return Err(absl::StrCat("key '", key, "' appears twice"));
    md.tensor_index[key] = md.tensors.size();
    md.tensors.push_back(std::move(t));
  }
  ReadVersionAndId(st, &md);
  return md;
}

absl::StatusOr<Decoder::Locations> Decoder::StorageData(const PickleValue* sd) const {
  Locations locations;
  for (const auto& [k, v] : sd->entries) {
    if (ClassName(k) != "MetadataIndex") {
      return Err(absl::StrCat("storage_data key should be MetadataIndex, found ", PickleDebugString(k)));
    }
    SC_ASSIGN_OR_RETURN(const PickleValue* kst, StateDict(k, "MetadataIndex"));
    SC_ASSIGN_OR_RETURN(std::string fqn, Str(kst->DictGet("fqn"), "MetadataIndex.fqn"));
    std::optional<Shape> offsets;
    const PickleValue* off = kst->DictGet("offset");
    if (off != nullptr && off->kind != Kind::kNone) {
      SC_ASSIGN_OR_RETURN(offsets, SizeTuple(off, absl::StrCat("storage_data['", fqn, "'].offset")));
    }
    SC_ASSIGN_OR_RETURN(StorageLocation loc, Location(v, absl::StrCat("storage_data['", fqn, "']")));
    locations[IndexKey(fqn, offsets)] = std::move(loc);
  }
  return locations;
}

absl::StatusOr<TensorEntry> Decoder::Tensor(const std::string& key, const PickleValue* v,
                                            const Locations& locations) const {
  SC_ASSIGN_OR_RETURN(const PickleValue* tst, StateDict(v, key));
  TensorEntry t;
  t.key = key;
  SC_ASSIGN_OR_RETURN(t.dtype, DTypeOf(tst->DictGet("properties"), key));
  SC_ASSIGN_OR_RETURN(t.shape, SizeTuple(tst->DictGet("size"), absl::StrCat("key '", key, "': size")));
  const PickleValue* chunks = tst->DictGet("chunks");
  if (chunks == nullptr || chunks->kind != Kind::kList) {
    return Err(absl::StrCat("key '", key, "': chunks missing or not a list"));
  }
  for (const PickleValue* c : chunks->items) {
    SC_ASSIGN_OR_RETURN(StoredChunk sc, Chunk(key, c, locations));
    t.chunks.push_back(std::move(sc));
  }
  return t;
}

absl::StatusOr<StoredChunk> Decoder::Chunk(const std::string& key, const PickleValue* c,
                                           const Locations& locations) const {
  if (ClassName(c) != "ChunkStorageMetadata") {
    return Err(absl::StrCat("key '", key, "': chunk should be ChunkStorageMetadata, found ", PickleDebugString(c)));
  }
  SC_ASSIGN_OR_RETURN(const PickleValue* cst, StateDict(c, key));
  StoredChunk sc;
  SC_ASSIGN_OR_RETURN(sc.box.offsets, SizeTuple(cst->DictGet("offsets"), absl::StrCat("key '", key, "': chunk offsets")));
  SC_ASSIGN_OR_RETURN(sc.box.sizes, SizeTuple(cst->DictGet("sizes"), absl::StrCat("key '", key, "': chunk sizes")));
  if (sc.box.offsets.size() != sc.box.sizes.size()) {
    return Err(absl::StrCat("key '", key, "': chunk offsets and sizes differ in rank"));
  }
  auto it = locations.find(IndexKey(key, sc.box.offsets));
  if (it == locations.end()) {
    return Err(absl::StrCat("key '", key, "': chunk at offsets ", ShapeToString(sc.box.offsets),
                            " has no storage_data entry"));
  }
  sc.location = it->second;
  return sc;
}

void Decoder::ReadVersionAndId(const PickleValue* st, CheckpointMetadata* md) {
  if (const PickleValue* ver = st->DictGet("version"); ver != nullptr && ver->kind == Kind::kString) {
    md->version = ver->str;
  }
  const PickleValue* sm = st->DictGet("storage_meta");
  if (sm == nullptr || ClassName(sm) != "StorageMeta" || sm->state == nullptr || sm->state->kind != Kind::kDict) return;
  const PickleValue* id = sm->state->DictGet("checkpoint_id");
  if (id != nullptr && id->kind == Kind::kString) {
    md->checkpoint_id = id->str;
  } else if (id != nullptr && id->kind == Kind::kCall && absl::StrContains(id->CalleeName(), "Path")) {
    std::vector<std::string> parts;
    for (const PickleValue* p : id->args->items) {
      if (p->kind == Kind::kString) parts.push_back(p->str);
    }
    md->checkpoint_id = absl::StrJoin(parts, "/");
    if (absl::StartsWith(md->checkpoint_id, "//")) md->checkpoint_id = md->checkpoint_id.substr(1);
  }
}

}  // namespace

const absl::flat_hash_set<std::string>& MetadataAllowedGlobals() {
  static const auto* kAllowed = new absl::flat_hash_set<std::string>(BuildAllowList());
  return *kAllowed;
}

absl::StatusOr<CheckpointMetadata> ParseMetadata(absl::string_view pickle_bytes, const std::string& source) {
  UnpickleOptions opts;
  opts.allowed_globals = &MetadataAllowedGlobals();
  opts.source = source;
  SC_ASSIGN_OR_RETURN(std::unique_ptr<PickleDocument> doc, Unpickle(pickle_bytes, opts));
  return Decoder(source).Decode(doc->root());
}

}  // namespace shardcast
