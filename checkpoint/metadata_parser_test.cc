// ParseMetadata / ValidateChunkTiling on generated `.metadata` pickles: a valid "staircase" of
// tens of thousands of chunks (quadratic for a pairwise sweep) validates fast, and overlaps and
// holes in it are still refused.
#include "checkpoint/metadata_parser.h"

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

// Writes the protocol-2 pickle of a DCP Metadata object, as the DCP classes' __reduce__ and
// BUILD state produce it (see metadata_parser.cc for what the decoder reads).
class MetadataPickler {
 public:
  MetadataPickler() { out_ = "\x80\x02"; }

  // Globals and strings are memoized (LONG_BINPUT / LONG_BINGET), as pickle does, which keeps a
  // 40k-chunk document small.
  void Global(const std::string& module, const std::string& name) {
    if (Memo("c" + module + "." + name)) return;
    out_ += "c" + module + "\n" + name + "\n";
    Put("c" + module + "." + name);
  }
  void Str(const std::string& s) {
    if (Memo("X" + s)) return;
    out_ += 'X';
    const uint32_t n = static_cast<uint32_t>(s.size());
    out_.append(reinterpret_cast<const char*>(&n), 4);
    out_ += s;
    Put("X" + s);
  }
  void Int(int64_t v) {
    if (v >= 0 && v <= INT32_MAX) {
      const int32_t w = static_cast<int32_t>(v);
      out_ += 'J';  // BININT
      out_.append(reinterpret_cast<const char*>(&w), 4);
    } else {
      out_ += "\x8a\x08";  // LONG1, 8 bytes
      out_.append(reinterpret_cast<const char*>(&v), 8);
    }
  }
  // cls.__new__(cls) followed by BUILD with the dict the caller writes between Begin and End.
  void BeginObject(const std::string& cls) {
    Global("torch.distributed.checkpoint.metadata", cls);
    out_ += ")\x81}(";  // EMPTY_TUPLE NEWOBJ EMPTY_DICT MARK
  }
  void BeginStorageInfo() {
    Global("torch.distributed.checkpoint.filesystem", "_StorageInfo");
    out_ += ")\x81}(";
  }
  void EndObject() { out_ += "ub"; }  // SETITEMS BUILD
  void Size(const std::vector<int64_t>& dims) {
    Global("torch", "Size");
    out_ += '(';
    for (int64_t d : dims) Int(d);
    out_ += "t\x85R";  // TUPLE, TUPLE1, REDUCE
  }

  // One bfloat16 tensor with the given chunks, each stored as a 64-byte item of "__0_0.distcp".
  std::string Tensor(const std::string& key, const std::vector<int64_t>& shape,
                     const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>& chunks) {
    BeginObject("Metadata");
    Str("state_dict_metadata");
    out_ += "}(";
    Str(key);
    BeginObject("TensorStorageMetadata");
    Str("properties");
    BeginObject("TensorProperties");
    Str("dtype");
    Global("torch", "bfloat16");
    EndObject();
    Str("size");
    Size(shape);
    Str("chunks");
    out_ += "](";  // EMPTY_LIST MARK
    for (const auto& [offsets, sizes] : chunks) {
      BeginObject("ChunkStorageMetadata");
      Str("offsets");
      Size(offsets);
      Str("sizes");
      Size(sizes);
      EndObject();
    }
    out_ += 'e';  // APPENDS
    EndObject();  // TensorStorageMetadata
    out_ += 'u';  // state_dict_metadata's SETITEMS
    Str("storage_data");
    out_ += "}(";
    int64_t offset = 0;
    for (const auto& [offsets, sizes] : chunks) {
      BeginObject("MetadataIndex");
      Str("fqn");
      Str(key);
      Str("offset");
      Size(offsets);
      EndObject();
      BeginStorageInfo();
      Str("relative_path");
      Str("__0_0.distcp");
      Str("offset");
      Int(offset);
      Str("length");
      Int(64);
      EndObject();
      offset += 64;
    }
    out_ += 'u';
    EndObject();  // Metadata
    out_ += '.';
    return out_;
  }

 private:
  bool Memo(const std::string& key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) return false;
    out_ += 'j';  // LONG_BINGET
    out_.append(reinterpret_cast<const char*>(&it->second), 4);
    return true;
  }
  void Put(const std::string& key) {
    const uint32_t idx = static_cast<uint32_t>(memo_.size());
    memo_.emplace(key, idx);
    out_ += 'r';  // LONG_BINPUT
    out_.append(reinterpret_cast<const char*>(&idx), 4);
  }

  std::string out_;
  std::map<std::string, uint32_t> memo_;
};

using Chunks = std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>;

// Tiles [n, n]: column c below the diagonal (rows [c, n)), row r right of it (cols [r+1, n)).
// Every column chunk reaches the last row, so a sweep along either dim compares all pairs.
Chunks Staircase(int64_t n) {
  Chunks c;
  for (int64_t i = 0; i < n; ++i) {
    c.push_back({{i, i}, {n - i, 1}});
    if (i + 1 < n) c.push_back({{i, i + 1}, {1, n - i - 1}});
  }
  return c;
}

constexpr int64_t kStairs = 20000;  // 39999 chunks

TEST(ValidateChunkTiling, StaircaseOfFortyThousandChunksIsFast) {
  const Chunks chunks = Staircase(kStairs);
  ASSERT_GE(chunks.size(), 39999u);
  const std::string pickle = MetadataPickler().Tensor("w", {kStairs, kStairs}, chunks);
  const absl::Time start = absl::Now();
  SC_ASSERT_OK_AND_ASSIGN(CheckpointMetadata md, ParseMetadata(pickle));
  const absl::Duration parse = absl::Now() - start;
  ASSERT_EQ(md.tensors.size(), 1u);
  EXPECT_EQ(md.tensors[0].chunks.size(), chunks.size());
  const absl::Time v0 = absl::Now();
  EXPECT_TRUE(ValidateChunkTiling(md.tensors[0], "x").ok());
  const absl::Duration validate = absl::Now() - v0;
  std::printf("%zu chunks, %zu-byte pickle: ParseMetadata %s, ValidateChunkTiling %s\n", chunks.size(), pickle.size(),
              absl::FormatDuration(parse).c_str(), absl::FormatDuration(validate).c_str());
  // Pairwise, this staircase took ~27 s; measured here ~25-100 ms (~190 ms under ASan; 2 busy
  // cores). Generous bounds, so that a loaded or sanitized CI build does not flake, but far
  // below the quadratic cost.
  EXPECT_LT(validate, absl::Seconds(1));
  EXPECT_LT(parse, absl::Seconds(10));
}

TEST(ValidateChunkTiling, OverlapInAStaircaseIsRefusedFast) {
  // Row chunk 3 moved one column left: it overlaps column chunk 3 at (3, 3) and leaves (3, n-1)
  // uncovered; the element count still matches.
  Chunks chunks = Staircase(kStairs);
  for (auto& [offsets, sizes] : chunks) {
    if (offsets == std::vector<int64_t>{3, 4}) offsets = {3, 3};
  }
  absl::Status s = ParseMetadata(MetadataPickler().Tensor("w", {kStairs, kStairs}, chunks)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("key 'w': chunks overlap"), std::string::npos) << s;
  // The validation alone, timed: the error path (which looks for a pair to name) is bounded too.
  TensorEntry t;
  t.key = "w";
  t.dtype = DType::kBFloat16;
  t.shape = {kStairs, kStairs};
  for (const auto& [offsets, sizes] : chunks) t.chunks.push_back(StoredChunk{Box{offsets, sizes}, {}});
  const absl::Time start = absl::Now();
  EXPECT_EQ(ValidateChunkTiling(t, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(ValidateChunkTiling, HoleInAStaircaseIsRefused) {
  Chunks chunks = Staircase(kStairs);
  chunks.erase(chunks.begin() + 1001);
  absl::Status s = ParseMetadata(MetadataPickler().Tensor("w", {kStairs, kStairs}, chunks)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("(missing chunks)"), std::string::npos) << s;
}

TEST(ValidateChunkTiling, AGridBeyondTheCornerBudgetIsRefusedAtOnce) {
  // A [2]^16 tensor in 65536 one-element chunks: 65536 x 2^16 corner updates (and a 2^32-slot
  // hash map) before the budget; now refused by its numbers before any of that work.
  TensorEntry t;
  t.key = "cube";
  t.dtype = DType::kUInt8;
  t.shape = Shape(16, 2);
  for (uint32_t i = 0; i < (1u << 16); ++i) {
    Box b{Shape(16, 0), Shape(16, 1)};
    for (int d = 0; d < 16; ++d) b.offsets[d] = (i >> d) & 1;
    t.chunks.push_back(StoredChunk{b, {}});
  }
  const absl::Time start = absl::Now();
  absl::Status s = ValidateChunkTiling(t, "x");
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("65536 chunks sharded over 16 dims: more than shardcast validates"), std::string::npos) << s;
}

TEST(ValidateChunkTiling, SmallCases) {
  TensorEntry t;
  t.key = "k";
  t.dtype = DType::kFloat32;
  t.shape = {4, 6, 8};
  auto chunk = [](std::vector<int64_t> o, std::vector<int64_t> s) { return StoredChunk{Box{o, s}, {}}; };
  // Sharded in dims 0 and 1 (2 x 2 grid), dim 2 whole; plus an empty chunk.
  t.chunks = {chunk({0, 0, 0}, {2, 3, 8}), chunk({0, 3, 0}, {2, 3, 8}), chunk({2, 0, 0}, {2, 3, 8}),
              chunk({2, 3, 0}, {2, 3, 8}), chunk({4, 0, 0}, {0, 6, 8})};
  EXPECT_TRUE(ValidateChunkTiling(t, "x").ok());
  // Swap two sizes: same count, overlapping, with a hole.
  t.chunks[1] = chunk({0, 2, 0}, {2, 3, 8});
  t.chunks[3] = chunk({2, 3, 0}, {2, 3, 8});
  t.chunks[0] = chunk({0, 0, 0}, {2, 3, 8});
  absl::Status s = ValidateChunkTiling(t, "x");
  EXPECT_NE(s.message().find("chunks overlap: offsets [0, 0, 0] sizes [2, 3, 8] and offsets [0, 2, 0]"),
            std::string::npos)
      << s;
  // A single whole chunk; a duplicate of it.
  t.chunks = {chunk({0, 0, 0}, {4, 6, 8})};
  EXPECT_TRUE(ValidateChunkTiling(t, "x").ok());
  t.chunks.push_back(t.chunks[0]);
  EXPECT_NE(ValidateChunkTiling(t, "x").message().find("overlapping or duplicate"), std::string::npos);
  // A scalar.
  t.shape = {};
  t.chunks = {chunk({}, {})};
  EXPECT_TRUE(ValidateChunkTiling(t, "x").ok());
}

}  // namespace
}  // namespace shardcast
