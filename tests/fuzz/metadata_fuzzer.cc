// libFuzzer target for the restricted unpickler (checkpoint/pickle.cc) and the DCP `.metadata`
// decoder (checkpoint/metadata_parser.cc).
//
// Each input is treated as the bytes of a `.metadata` file and goes through two paths:
//  1. Unpickle() with a permissive allow-list (MetadataAllowedGlobals() plus the tensor-record
//     globals, persistent ids allowed), so that the opcode decoder is exercised even where the
//     decoder would refuse the document; the resulting value graph (which may share nodes and
//     contain cycles through the memo) is walked once with the accessors and PickleDebugString.
//  2. ParseMetadata(), the production entry point. When it succeeds, the invariants that
//     metadata_parser.h promises to later stages are re-checked here (chunks inside the shape,
//     chunks tiling the tensor, byte sizes not overflowing, safe relative paths, known
//     transforms); a violation aborts, so libFuzzer records it as a crash.
//
// Sanitizers (ASan + UBSan, built by run_fuzzers.sh) catch memory errors, leaks and UB.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "checkpoint/metadata.h"
#include "checkpoint/metadata_parser.h"
#include "checkpoint/pickle.h"
#include "checkpoint/torch_record.h"
#include "common/box.h"
#include "common/dtype.h"

namespace {

using shardcast::PickleValue;

[[noreturn]] void Violation(const char* what, const std::string& detail) {
  std::fprintf(stderr, "INVARIANT VIOLATION (metadata_fuzzer): %s: %s\n", what, detail.c_str());
  std::abort();
}

const shardcast::UnpickleOptions& PermissiveOptions() {
  static const shardcast::UnpickleOptions* opts = [] {
    auto* o = new shardcast::UnpickleOptions;
    auto* globals = new absl::flat_hash_set<std::string>(shardcast::MetadataAllowedGlobals());
    for (const std::string& g : shardcast::TensorRecordAllowedGlobals()) globals->insert(g);
    o->allowed_globals = globals;
    o->allow_persistent_id = true;
    o->source = "fuzz";
    return o;
  }();
  return *opts;
}

// Visits every node reachable from the root once (the graph may be cyclic through the memo).
void WalkGraph(const PickleValue* root) {
  std::unordered_set<const PickleValue*> seen;
  std::vector<const PickleValue*> todo{root};
  size_t sink = 0;
  while (!todo.empty()) {
    const PickleValue* v = todo.back();
    todo.pop_back();
    if (v == nullptr || !seen.insert(v).second) continue;
    sink += std::string(shardcast::PickleKindName(v->kind)).size();
    sink += v->CalleeName().size();
    sink += v->DictGet("dtype") != nullptr;
    // Depth 1 keeps the cost linear in the graph size; the root gets the default depth below.
    sink += shardcast::PickleDebugString(v, 1).size();
    for (const PickleValue* c : v->items) todo.push_back(c);
    for (const auto& [k, val] : v->entries) {
      todo.push_back(k);
      todo.push_back(val);
    }
    todo.push_back(v->callable);
    todo.push_back(v->args);
    todo.push_back(v->state);
  }
  sink += shardcast::PickleDebugString(root).size();
  if (sink == 0) std::abort();  // unreachable (every node renders non-empty); keeps `sink` live
}

void CheckMetadata(const shardcast::CheckpointMetadata& md) {
  if (md.tensor_index.size() != md.tensors.size()) Violation("tensor_index size", "differs from tensors");
  for (size_t i = 0; i < md.tensors.size(); ++i) {
    const shardcast::TensorEntry& t = md.tensors[i];
    if (md.FindTensor(t.key) != &t) Violation("FindTensor", t.key);
    absl::StatusOr<int64_t> numel = shardcast::NumElements(t.shape);
    if (!numel.ok()) Violation("accepted a shape whose element count is invalid", t.key);
    int64_t nbytes;
    if (__builtin_mul_overflow(*numel, static_cast<int64_t>(shardcast::ItemSize(t.dtype)), &nbytes)) {
      Violation("accepted a tensor whose byte size overflows", t.key);
    }
    if (t.nbytes() != static_cast<uint64_t>(nbytes)) Violation("nbytes()", t.key);
    if (t.chunks.empty()) Violation("accepted a tensor with no chunks", t.key);
    const shardcast::Box full = shardcast::FullBox(t.shape);
    int64_t covered = 0;
    for (const shardcast::StoredChunk& c : t.chunks) {
      if (c.box.rank() != t.shape.size() || c.box.offsets.size() != t.shape.size()) {
        Violation("chunk rank differs from the tensor's", t.key);
      }
      for (size_t d = 0; d < t.shape.size(); ++d) {
        if (c.box.offsets[d] < 0 || c.box.sizes[d] < 0 || c.box.offsets[d] > t.shape[d] ||
            c.box.sizes[d] > t.shape[d] - c.box.offsets[d]) {
          Violation("chunk lies outside the shape", t.key + " " + shardcast::BoxToString(c.box));
        }
      }
      if (!shardcast::Contains(full, c.box)) Violation("Contains() disagrees", t.key);
      absl::StatusOr<int64_t> n = shardcast::NumElements(c.box.sizes);
      if (!n.ok() || __builtin_add_overflow(covered, *n, &covered)) Violation("chunk element counts overflow", t.key);
      const shardcast::StorageLocation& loc = c.location;
      const std::string& p = loc.relative_path;
      if (p.empty() || p[0] == '/' || p.find('\0') != std::string::npos || p == ".." ||
          p.rfind("../", 0) == 0 || p.find("/../") != std::string::npos ||
          (p.size() >= 3 && p.compare(p.size() - 3, 3, "/..") == 0)) {
        Violation("accepted an unsafe relative_path", p);
      }
      for (const std::string& tr : loc.transforms) {
        if (tr != "stream.zstd/1" && tr != "stream.zstd") Violation("accepted an unknown transform", tr);
      }
    }
    if (covered != *numel) Violation("chunks do not tile the tensor", t.key);
    // Pairwise overlap re-check (bounded so that the harness itself stays fast).
    if (t.chunks.size() <= 64) {
      for (size_t a = 0; a < t.chunks.size(); ++a) {
        for (size_t b = a + 1; b < t.chunks.size(); ++b) {
          std::optional<shardcast::Box> ov = shardcast::Intersect(t.chunks[a].box, t.chunks[b].box);
          if (!ov.has_value()) continue;
          absl::StatusOr<int64_t> n = shardcast::NumElements(ov->sizes);
          if (n.ok() && *n > 0) Violation("accepted overlapping chunks", t.key);
        }
      }
    }
  }
  for (const shardcast::BytesEntry& b : md.bytes_entries) {
    if (md.FindBytes(b.key) == nullptr) Violation("FindBytes", b.key);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<std::unique_ptr<shardcast::PickleDocument>> doc = shardcast::Unpickle(bytes, PermissiveOptions());
  if (doc.ok()) {
    if ((*doc)->root() == nullptr) Violation("Unpickle", "succeeded without a root");
    WalkGraph((*doc)->root());
  } else if (doc.status().message().empty()) {
    Violation("Unpickle", "error without a message");
  }

  absl::StatusOr<shardcast::CheckpointMetadata> md = shardcast::ParseMetadata(bytes, "fuzz/.metadata");
  if (md.ok()) {
    CheckMetadata(*md);
  } else if (md.status().message().empty()) {
    Violation("ParseMetadata", "error without a message");
  }
  return 0;
}
