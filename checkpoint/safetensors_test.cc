// Safetensors input: hand-made headers through the pure parser (each refusal), then folders on
// disk through ResolveCheckpoint + CheckpointReader (format detection, index, path safety,
// bit-exact reads of boxes).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <utility>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "checkpoint/reader.h"
#include "checkpoint/resolve.h"
#include "checkpoint/safetensors_header.h"
#include "common/safetensors.h"
#include "common/status_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

using ::testing::HasSubstr;

// Parses `header` as the header of a file of `data_bytes` data bytes named "m.safetensors".
absl::StatusOr<SafetensorsFile> Parse(const std::string& header, uint64_t data_bytes) {
  return ParseSafetensorsHeader(header, 8 + header.size() + data_bytes, "m.safetensors");
}

void ExpectRefused(const std::string& header, uint64_t data_bytes, absl::StatusCode code, const std::string& what) {
  absl::StatusOr<SafetensorsFile> f = Parse(header, data_bytes);
  ASSERT_FALSE(f.ok()) << header;
  EXPECT_EQ(f.status().code(), code) << f.status();
  EXPECT_THAT(std::string(f.status().message()), HasSubstr(what)) << header;
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("m.safetensors"));
}

TEST(SafetensorsHeader, MapsEachTensorToOneRawChunk) {
  SC_ASSERT_OK_AND_ASSIGN(
      SafetensorsFile f,
      Parse(R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,3],"data_offsets":[16,28]},)"
            R"("a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"s":{"dtype":"F32","shape":[],"data_offsets":[28,32]},)"
            R"("e":{"dtype":"F8_E4M3","shape":[0,5],"data_offsets":[32,32]}})",
            32));
  ASSERT_EQ(f.tensors.size(), 4u);
  EXPECT_EQ(f.metadata.at("format"), "pt");
  const TensorEntry& b = f.tensors[0];
  EXPECT_EQ(b.key, "b");
  EXPECT_EQ(b.dtype, DType::kBFloat16);
  EXPECT_EQ(b.shape, (Shape{2, 3}));
  ASSERT_EQ(b.chunks.size(), 1u);
  EXPECT_EQ(b.chunks[0].box, FullBox(Shape{2, 3}));
  const uint64_t data_start = 8 + std::string(R"({"__metadata__":{"format":"pt"},)").size();
  EXPECT_GT(b.chunks[0].location.offset, data_start);  // data_start + 16
  EXPECT_EQ(b.chunks[0].location.length, 12u);
  EXPECT_EQ(b.chunks[0].location.format, ItemFormat::kRaw);
  EXPECT_EQ(f.tensors[1].chunks[0].location.offset + 16, b.chunks[0].location.offset);
  EXPECT_EQ(f.tensors[2].shape, Shape{});
  EXPECT_EQ(f.tensors[3].dtype, DType::kFloat8E4M3FN);
}

TEST(SafetensorsHeader, HeaderLengthIsBoundedAndInsideTheFile) {
  auto le = [](uint64_t n) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
    return s;
  };
  SC_ASSERT_OK_AND_ASSIGN(uint64_t n, SafetensorsHeaderLength(le(40), 100, "f"));
  EXPECT_EQ(n, 40u);
  EXPECT_EQ(SafetensorsHeaderLength(le(93), 100, "f").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(SafetensorsHeaderLength(le(100'000'001), 1ull << 40, "f").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SafetensorsHeaderLength(le(UINT64_MAX), 100, "f").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SafetensorsHeaderLength("", 3, "f").status().code(), absl::StatusCode::kDataLoss);
}

TEST(SafetensorsHeader, RefusesHostileHeaders) {
  using C = absl::StatusCode;
  ExpectRefused("not json", 0, C::kInvalidArgument, "not JSON");
  ExpectRefused("[1]", 0, C::kInvalidArgument, "JSON object");
  ExpectRefused(std::string(300, '[') + std::string(300, ']'), 0, C::kInvalidArgument, "not JSON");
  ExpectRefused(R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1, C::kInvalidArgument,
                "unsupported safetensors dtype 'F4'");
  ExpectRefused(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8, C::kInvalidArgument, "'dtype'");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, C::kInvalidArgument, "'shape'");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8, C::kInvalidArgument, "'shape'");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", 12, C::kInvalidArgument,
                "hold 12 bytes but float32 [2] needs 8");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, C::kInvalidArgument,
                "end before they begin");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8, C::kInvalidArgument,
                "'data_offsets'");
  ExpectRefused(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0,
                C::kInvalidArgument, "overflows");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 12, C::kDataLoss,
                "passes the end of the data");
  ExpectRefused(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,0]}})", 8,
                C::kInvalidArgument, "'data_offsets'");
  ExpectRefused(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                12, C::kInvalidArgument, "tensors 'a' and 'b' overlap");
  ExpectRefused(R"({"__metadata__":{"n":1}})", 0, C::kInvalidArgument, "'__metadata__' entry 'n'");
  ExpectRefused(R"({"w":[1]})", 0, C::kInvalidArgument, "tensor 'w'");
}

TEST(SafetensorsHeader, IndexNamesOnlyPlainFilesInTheFolder) {
  SC_ASSERT_OK_AND_ASSIGN(auto wm, ParseSafetensorsIndex(R"({"metadata":{},"weight_map":{"a":"m-1.safetensors"}})",
                                                         "i.json"));
  EXPECT_EQ(wm.at("a"), "m-1.safetensors");
  for (const char* bad : {"../m.safetensors", "/etc/m.safetensors", "sub/m.safetensors", ".m.safetensors",
                          "m.bin", ""}) {
    absl::StatusOr<std::map<std::string, std::string>> r =
        ParseSafetensorsIndex(absl::StrCat(R"({"weight_map":{"a":")", bad, R"("}})"), "i.json");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("i.json: weight_map maps 'a'"));
  }
  EXPECT_FALSE(ParseSafetensorsIndex(R"({"weight_map":{"a":3}})", "i.json").ok());
  EXPECT_FALSE(ParseSafetensorsIndex(R"({"weight_map":{}})", "i.json").ok());
  EXPECT_FALSE(ParseSafetensorsIndex(R"({"weights":{}})", "i.json").ok());
}

SafetensorsFile OneTensorFile(const std::string& file, const std::string& key) {
  SafetensorsFile f;
  f.relative_path = file;
  TensorEntry t;
  t.key = key;
  t.shape = {1};
  t.chunks.push_back(StoredChunk{FullBox(t.shape), StorageLocation{file, 8, 4, {}, ItemFormat::kRaw}});
  f.tensors.push_back(t);
  return f;
}

TEST(SafetensorsHeader, MergeRefusesAKeyInTwoFilesAndDisagreementsWithTheIndex) {
  absl::StatusOr<CheckpointMetadata> two =
      MergeSafetensorsFiles({OneTensorFile("x.safetensors", "k"), OneTensorFile("y.safetensors", "k")}, nullptr, "");
  ASSERT_FALSE(two.ok());
  EXPECT_THAT(std::string(two.status().message()), HasSubstr("'k' is in two files: x.safetensors and y.safetensors"));

  std::map<std::string, std::string> wm = {{"k", "y.safetensors"}};
  absl::StatusOr<CheckpointMetadata> moved = MergeSafetensorsFiles({OneTensorFile("x.safetensors", "k")}, &wm, "i.json");
  ASSERT_FALSE(moved.ok());
  EXPECT_THAT(std::string(moved.status().message()), HasSubstr("x.safetensors: tensor 'k' is not where i.json says"));

  wm = {{"k", "x.safetensors"}, {"gone", "x.safetensors"}};
  absl::StatusOr<CheckpointMetadata> missing =
      MergeSafetensorsFiles({OneTensorFile("x.safetensors", "k")}, &wm, "i.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("lists tensor 'gone' in x.safetensors"));

  SC_ASSERT_OK_AND_ASSIGN(
      CheckpointMetadata md,
      MergeSafetensorsFiles({OneTensorFile("y.safetensors", "z"), OneTensorFile("x.safetensors", "a")}, nullptr, ""));
  ASSERT_EQ(md.tensors.size(), 2u);
  EXPECT_EQ(md.tensors[0].key, "a");  // sorted by key
  EXPECT_EQ(md.FindTensor("z")->chunks[0].location.relative_path, "y.safetensors");
}

// Random mutations of a valid header (bytes flipped, digits changed, bytes cut): whatever the
// parser accepts keeps its promises: each tensor's bytes inside the data, exactly its size, one
// chunk covering the whole tensor, no two tensors overlapping.
TEST(SafetensorsHeader, MutatedHeadersAreRefusedOrKeepTheInvariants) {
  const std::string seed =
      R"({"__metadata__":{"a":"b"},"x":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},)"
      R"("y":{"dtype":"I64","shape":[2],"data_offsets":[12,28]},"z":{"dtype":"F32","shape":[],"data_offsets":[28,32]}})";
  std::mt19937 rng(12345);
  const std::string alphabet = "0123456789[]{},:\"-eE.9";
  const char* dtypes[] = {"BF16", "I64", "F32", "U8", "BOOL", "F64", "F8_E5M2"};
  // Half the inputs: random tensors whose offsets are right or a little off.
  auto random_header = [&]() {
    std::string h = "{";
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) {
      const char* dt = dtypes[rng() % 7];
      const uint64_t item = ItemSize(*DTypeFromSafetensors(dt));
      std::string dims;
      uint64_t count = 1;
      const int rank = static_cast<int>(rng() % 3);
      for (int d = 0; d < rank; ++d) {
        const uint64_t s = rng() % 4;
        count *= s;
        absl::StrAppend(&dims, d ? "," : "", s);
      }
      const uint64_t begin = rng() % 48;
      const uint64_t end = begin + count * item + (rng() % 4 == 0 ? rng() % 3 : 0);
      absl::StrAppend(&h, i ? "," : "", "\"t", i, "\":{\"dtype\":\"", dt, "\",\"shape\":[", dims,
                      "],\"data_offsets\":[", begin, ",", end, "]}");
    }
    return h + "}";
  };
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string h = iter % 2 == 0 ? seed : random_header();
    const int edits = iter % 2 == 0 ? 1 + static_cast<int>(rng() % 4) : 0;
    for (int e = 0; e < edits && !h.empty(); ++e) {
      size_t at = rng() % h.size();
      if (rng() % 2 == 0) {  // mostly at a digit: numbers are where the checks are
        const size_t digit = h.find_first_of("0123456789", at);
        if (digit != std::string::npos) at = digit;
      }
      switch (rng() % 3) {
        case 0: h[at] = rng() % 4 != 0 ? static_cast<char>('0' + rng() % 10) : alphabet[rng() % alphabet.size()]; break;
        case 1: h.erase(at, 1 + rng() % 3); break;
        default: h.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
      }
    }
    const uint64_t data = rng() % 4 == 0 ? rng() % 40 : 32 + rng() % 64;
    const uint64_t file_size = 8 + h.size() + data;
    absl::StatusOr<SafetensorsFile> f = ParseSafetensorsHeader(h, file_size, "m.safetensors");
    if (!f.ok()) {
      EXPECT_FALSE(f.status().message().empty());
      continue;
    }
    ++accepted;
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    for (const TensorEntry& t : f->tensors) {
      ASSERT_EQ(t.chunks.size(), 1u) << h;
      const StorageLocation& l = t.chunks[0].location;
      EXPECT_EQ(t.chunks[0].box, FullBox(t.shape)) << h;
      EXPECT_EQ(l.length, t.nbytes()) << h;
      EXPECT_GE(l.offset, 8 + h.size()) << h;
      EXPECT_LE(l.offset + l.length, file_size) << h;
      if (l.length > 0) spans.emplace_back(l.offset, l.offset + l.length);
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i) EXPECT_LE(spans[i - 1].second, spans[i].first) << h;
  }
  EXPECT_GT(accepted, 1000);  // many inputs are accepted (3718 with this seed): the checks above ran
}

// ---- Folders on disk ----

class SafetensorsFolderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    root_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/st_", ::getpid(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    dir_ = root_ + "/ckpt";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
  }
  void Write(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
  }
  // A safetensors file with float32 tensors name -> shape, values 0, 1, 2, ... per tensor.
  void WriteFile(const std::string& path, const std::map<std::string, Shape>& tensors) {
    std::string header = "{", data;
    for (const auto& [name, shape] : tensors) {
      int64_t n = 1;
      for (int64_t s : shape) n *= s;
      const size_t begin = data.size();
      for (int64_t i = 0; i < n; ++i) {
        const float v = static_cast<float>(i);
        data.append(reinterpret_cast<const char*>(&v), 4);
      }
      std::string dims;
      for (int64_t s : shape) absl::StrAppend(&dims, dims.empty() ? "" : ",", s);
      absl::StrAppend(&header, header.size() > 1 ? "," : "", "\"", name, "\":{\"dtype\":\"F32\",\"shape\":[", dims,
                      "],\"data_offsets\":[", begin, ",", data.size(), "]}");
    }
    header += "}";
    std::string len(8, '\0');
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(header.size() >> (8 * i));
    Write(path, len + header + data);
  }
  std::string root_, dir_;
};

TEST_F(SafetensorsFolderTest, ReadsBoxesOfAShardedIndexBitExact) {
  WriteFile(dir_ + "/model-00001-of-00002.safetensors", {{"a.w", {4, 6}}});
  WriteFile(dir_ + "/model-00002-of-00002.safetensors", {{"b.w", {3}}});
  Write(dir_ + "/model.safetensors.index.json",
        R"({"metadata":{"total_size":108},"weight_map":{"a.w":"model-00001-of-00002.safetensors",)"
        R"("b.w":"model-00002-of-00002.safetensors"}})");
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(dir_));
  EXPECT_EQ(reader->resolved().format, CheckpointFormat::kSafetensors);
  ASSERT_EQ(reader->Select("a.").size(), 1u);
  const TensorEntry* a = reader->metadata().FindTensor("a.w");
  ASSERT_NE(a, nullptr);
  // Columns 2..4 of rows 1..2: a strided piece of a raw chunk.
  float got[2 * 3];
  SC_ASSERT_OK(reader->Read({{a, Box{{1, 2}, {2, 3}}, reinterpret_cast<char*>(got)}}));
  const float want[] = {8, 9, 10, 14, 15, 16};
  EXPECT_EQ(std::memcmp(got, want, sizeof(want)), 0);
  float whole[3];
  SC_ASSERT_OK(reader->Read({{reader->metadata().FindTensor("b.w"), Box{{0}, {3}}, reinterpret_cast<char*>(whole)}}));
  EXPECT_EQ(whole[2], 2.0f);
  EXPECT_EQ(reader->stats().crc_absent_records, 2u);  // safetensors stores no CRC
}

TEST_F(SafetensorsFolderTest, OpensASingleFilePath) {
  WriteFile(dir_ + "/model.safetensors", {{"w", {2}}});
  WriteFile(dir_ + "/other.safetensors", {{"w", {5}}});  // would clash if the folder were read
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(dir_ + "/model.safetensors"));
  EXPECT_EQ(reader->metadata().FindTensor("w")->shape, Shape{2});
  absl::StatusOr<std::unique_ptr<CheckpointReader>> folder = CheckpointReader::Open(dir_);
  ASSERT_FALSE(folder.ok());
  EXPECT_THAT(std::string(folder.status().message()), HasSubstr("'w' is in two files"));
}

TEST_F(SafetensorsFolderTest, RefusesAFolderWithBothFormats) {
  WriteFile(dir_ + "/model.safetensors", {{"w", {2}}});
  Write(dir_ + "/.metadata", "x");
  absl::StatusOr<ResolvedCheckpoint> r = ResolveCheckpoint(dir_, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("both a DCP checkpoint (.metadata) and safetensors"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("model.safetensors"));
}

TEST_F(SafetensorsFolderTest, RefusesIndexEntriesThatLeaveTheFolder) {
  WriteFile(root_ + "/outside.safetensors", {{"w", {2}}});
  ASSERT_EQ(::symlink((root_ + "/outside.safetensors").c_str(), (dir_ + "/link.safetensors").c_str()), 0);
  Write(dir_ + "/model.safetensors.index.json", R"({"weight_map":{"w":"link.safetensors"}})");
  absl::StatusOr<std::unique_ptr<CheckpointReader>> r = CheckpointReader::Open(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("outside the checkpoint folder"));

  Write(dir_ + "/model.safetensors.index.json", R"({"weight_map":{"w":"../outside.safetensors"}})");
  r = CheckpointReader::Open(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("'../outside.safetensors'"));
}

TEST_F(SafetensorsFolderTest, NamesAShardTheIndexListsButIsMissing) {
  WriteFile(dir_ + "/model-00001-of-00002.safetensors", {{"a", {2}}});
  Write(dir_ + "/model.safetensors.index.json",
        R"({"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})");
  absl::StatusOr<std::unique_ptr<CheckpointReader>> r = CheckpointReader::Open(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("model.safetensors.index.json names model-00002-of-00002.safetensors, which is missing"));
}

TEST_F(SafetensorsFolderTest, RefusesATruncatedFileNamingIt) {
  WriteFile(dir_ + "/model.safetensors", {{"w", {4}}});
  ASSERT_EQ(::truncate((dir_ + "/model.safetensors").c_str(), 8 + 10), 0);
  absl::StatusOr<std::unique_ptr<CheckpointReader>> r = CheckpointReader::Open(dir_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("model.safetensors: header length"));
}

}  // namespace
}  // namespace shardcast
