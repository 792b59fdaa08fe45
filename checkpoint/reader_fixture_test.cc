// The reader against real checkpoints written by PyTorch: every tensor of the dcp-torch2.11
// fixtures matches expected.json (dtype, shape, sha256 of the whole tensor and of every TP shard
// read as a box), and the tiny PyTorch 1.13 / 2.6 / 2.14 (+zstd) checkpoints read back the
// values their README lists.
#include <cstring>
#include <memory>
#include <vector>

#include "checkpoint/digest.h"
#include "checkpoint/reader.h"
#include "checkpoint/test_fixtures.h"
#include "common/json.h"
#include "common/sha256.h"
#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

using testing::FixturePath;

Json LoadExpected() {
  auto j = Json::Parse(testing::ReadFileOrDie(FixturePath("dcp-torch2.11/expected.json")));
  EXPECT_TRUE(j.ok()) << j.status();
  return *j;
}

// The boxes that make up TP rank r's shard under a fixture rule, in the order they concatenate.
std::vector<Box> ShardBoxes(const std::string& rule, const Shape& shape, int tp, int r) {
  Box full = FullBox(shape);
  if (rule == "rep") return {full};
  if (rule == "col" || rule == "row") {
    const size_t dim = rule == "col" ? 0 : 1;
    Box b = full;
    b.sizes[dim] = shape[dim] / tp;
    b.offsets[dim] = r * b.sizes[dim];
    return {b};
  }
  // glu: dim 0 is [gate; up]; rank r takes part r of each half.
  std::vector<Box> out;
  for (int half = 0; half < 2; ++half) {
    Box b = full;
    b.sizes[0] = shape[0] / 2 / tp;
    b.offsets[0] = half * shape[0] / 2 + r * b.sizes[0];
    out.push_back(b);
  }
  return out;
}

class Torch211Fixture : public ::testing::TestWithParam<std::string> {};

TEST_P(Torch211Fixture, EveryTensorAndShardMatchesExpected) {
  const Json expected = LoadExpected();
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(FixturePath("dcp-torch2.11/" + GetParam())));
  const CheckpointMetadata& md = reader->metadata();
  const Json& tensors = *expected.Find("tensors");
  ASSERT_EQ(md.tensors.size(), tensors.size());
  std::vector<const TensorEntry*> all;
  for (const TensorEntry& t : md.tensors) all.push_back(&t);
  SC_ASSERT_OK_AND_ASSIGN(std::vector<std::string> digests, DigestTensors(*reader, all));
  int shards_checked = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const TensorEntry& t = *all[i];
    const Json* e = tensors.Find(t.key);
    ASSERT_NE(e, nullptr) << t.key;
    EXPECT_EQ(DTypeName(t.dtype), e->Find("dtype")->as_string()) << t.key;
    Shape shape;
    for (const Json& d : e->Find("shape")->items()) shape.push_back(d.as_int());
    EXPECT_EQ(t.shape, shape) << t.key;
    EXPECT_EQ(digests[i], e->Find("sha256")->as_string()) << t.key;
    // Every TP shard, read as boxes straight from the chunks.
    for (const auto& [tp_str, ranks] : e->Find("shards")->members()) {
      const int tp = std::stoi(tp_str);
      for (int r = 0; r < tp; ++r) {
        std::vector<Box> boxes = ShardBoxes(e->Find("rule")->as_string(), t.shape, tp, r);
        std::vector<BoxRead> reads;
        uint64_t total = 0;
        for (const Box& b : boxes) total += *NumElements(b.sizes) * ItemSize(t.dtype);
        std::string buf(total, '\x5a');
        uint64_t off = 0;
        for (const Box& b : boxes) {
          reads.push_back(BoxRead{&t, b, buf.data() + off});
          off += *NumElements(b.sizes) * ItemSize(t.dtype);
        }
        SC_ASSERT_OK(reader->Read(reads));
        EXPECT_EQ(Sha256Hex(buf), ranks[r].as_string()) << t.key << " tp " << tp << " rank " << r;
        ++shards_checked;
      }
    }
  }
  EXPECT_GT(shards_checked, 100);
  std::vector<std::string> bytes_keys;
  for (const BytesEntry& b : md.bytes_entries) bytes_keys.push_back(b.key);
  // The one-writer checkpoints keep the bytes entry; the DTensor (vit_tp2) save has none.
  std::vector<std::string> want;
  if (GetParam() != "vit_tp2") {
    for (const Json& k : expected.Find("bytes_entries")->items()) want.push_back(k.as_string());
  }
  EXPECT_EQ(bytes_keys, want);
  for (const BytesEntry& b : md.bytes_entries) {
    SC_ASSERT_OK_AND_ASSIGN(std::string payload, reader->ReadBytesEntry(b));
    EXPECT_EQ(payload.substr(0, 4), "PK\x03\x04");  // a torch.save archive
  }
}

INSTANTIATE_TEST_SUITE_P(AllCheckpoints, Torch211Fixture, ::testing::Values("vit_flat", "vit_tp2", "bridge_iter"));

TEST(Torch211, TrackerLayoutResolvesIteration) {
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(FixturePath("dcp-torch2.11/bridge_iter")));
  ASSERT_TRUE(reader->resolved().iteration.has_value());
  EXPECT_EQ(*reader->resolved().iteration, 42);
  EXPECT_NE(reader->resolved().dir.find("iter_0000042"), std::string::npos);
}

TEST(Torch211, PrefixSelectsOnlyTheEncoder) {
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(FixturePath("dcp-torch2.11/vit_tp2")));
  auto vision = reader->Select("model.vision_model.");
  auto language = reader->Select("model.language_model.");
  EXPECT_FALSE(vision.empty());
  EXPECT_FALSE(language.empty());
  EXPECT_EQ(vision.size() + language.size(), reader->metadata().tensors.size());
  // Reading the encoder must not touch the language model's bytes.
  uint64_t vision_bytes = 0, language_bytes = 0;
  for (auto* t : vision) vision_bytes += t->nbytes();
  for (auto* t : language) language_bytes += t->nbytes();
  SC_ASSERT_OK(DigestTensors(*reader, vision).status());
  EXPECT_LT(reader->bytes_read(), vision_bytes + 4096 * 2 * 64);  // payloads + record headers
  EXPECT_GT(language_bytes, 0u);
}

TEST(Torch211, Dim0RangeReadsOnlyThoseRows) {
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(FixturePath("dcp-torch2.11/vit_flat")));
  const TensorEntry* t = reader->metadata().FindTensor("model.vision_model.decoder.layers.0.mlp.linear_fc1.weight");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->chunks.size(), 1u);
  // Warm the record header cache, then read 4 rows of 256.
  std::string row(t->shape[1] * ItemSize(t->dtype) * 4, '\0');
  SC_ASSERT_OK(reader->Read({BoxRead{t, Box{{0, 0}, {4, t->shape[1]}}, row.data()}}));
  const uint64_t before = reader->bytes_read();
  SC_ASSERT_OK(reader->Read({BoxRead{t, Box{{100, 0}, {4, t->shape[1]}}, row.data()}}));
  EXPECT_EQ(reader->bytes_read() - before, row.size());
}

// --- PyTorch 1.13 / 2.6 / 2.14 (+zstd): exact values from dcp-multiversion/README.md ---

uint16_t Bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>(u >> 16);  // exact for the small integers used here
}

template <typename T>
std::vector<T> ReadAll(CheckpointReader& reader, const std::string& key) {
  const TensorEntry* t = reader.metadata().FindTensor(key);
  EXPECT_NE(t, nullptr) << key;
  if (t == nullptr) return {};
  EXPECT_EQ(ItemSize(t->dtype), sizeof(T)) << key;
  std::vector<T> out(t->nbytes() / sizeof(T));
  absl::Status s = reader.Read({BoxRead{t, FullBox(t->shape), reinterpret_cast<char*>(out.data())}});
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

class MultiVersion : public ::testing::TestWithParam<std::string> {};

TEST_P(MultiVersion, WeightIsRowTimesFourPlusColumn) {
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(FixturePath("dcp-multiversion/" + GetParam())));
  const TensorEntry* w = reader->metadata().FindTensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::kBFloat16);
  EXPECT_EQ(w->shape, (Shape{8, 4}));
  ASSERT_EQ(w->chunks.size(), 2u);
  std::vector<uint16_t> v = ReadAll<uint16_t>(*reader, "w");
  ASSERT_EQ(v.size(), 32u);
  for (int r = 0; r < 8; ++r) {
    for (int c = 0; c < 4; ++c) EXPECT_EQ(v[r * 4 + c], Bf16(r * 4 + c)) << r << "," << c;
  }
  // A box across both chunks: rows 3..4, columns 1..2.
  std::vector<uint16_t> box(4);
  SC_ASSERT_OK(reader->Read({BoxRead{w, Box{{3, 1}, {2, 2}}, reinterpret_cast<char*>(box.data())}}));
  EXPECT_EQ(box, (std::vector<uint16_t>{Bf16(13), Bf16(14), Bf16(17), Bf16(18)}));
  // Boxes inside one chunk, with the chunk named (right, wrong, out of range, none), and in
  // chunk order so that the previous chunk's hint applies: the same values every way.
  for (int64_t named : {int64_t{1}, int64_t{0}, int64_t{7}, int64_t{-1}}) {
    std::vector<uint16_t> in_one(2);
    SC_ASSERT_OK(reader->Read({BoxRead{w, Box{{5, 2}, {1, 2}}, reinterpret_cast<char*>(in_one.data()), named}}));
    EXPECT_EQ(in_one, (std::vector<uint16_t>{Bf16(22), Bf16(23)})) << named;
  }
  std::vector<uint16_t> rows(32);
  std::vector<BoxRead> by_row;
  for (int64_t r = 0; r < 8; ++r) by_row.push_back(BoxRead{w, Box{{r, 0}, {1, 4}}, reinterpret_cast<char*>(&rows[r * 4])});
  SC_ASSERT_OK(reader->Read(by_row));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(rows[i], Bf16(i)) << i;
}

INSTANTIATE_TEST_SUITE_P(AllVersions, MultiVersion,
                         ::testing::Values("pt1.13_py3.11.2", "pt2.6_py3.13", "pt2.14_py3.14", "pt2.14_py3.14_zstd",
                                           "min_pt2.6_py3.13", "min_pt2.14_py3.14"));

TEST(MultiVersion, Torch113BiasAndStep) {
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(FixturePath("dcp-multiversion/pt1.13_py3.11.2")));
  EXPECT_EQ(ReadAll<float>(*reader, "b"), (std::vector<float>{1.5f, 2.5f}));
  ASSERT_NE(reader->metadata().FindBytes("step"), nullptr);
}

class FullVariant : public ::testing::TestWithParam<std::string> {};

TEST_P(FullVariant, EveryValueAsListed) {
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(FixturePath("dcp-multiversion/" + GetParam())));
  EXPECT_EQ(ReadAll<float>(*reader, "model.b"), (std::vector<float>{1.5f, 2.5f}));
  EXPECT_EQ(ReadAll<double>(*reader, "model.scalar"), (std::vector<double>{3.0}));
  EXPECT_TRUE(reader->metadata().FindTensor("model.scalar")->shape.empty());
  // float8_e4m3fn: 1.0 = 0x38, -2.0 = 0xC0.
  EXPECT_EQ(reader->metadata().FindTensor("model.f8")->dtype, DType::kFloat8E4M3FN);
  EXPECT_EQ(ReadAll<uint8_t>(*reader, "model.f8"), (std::vector<uint8_t>{0x38, 0xC0}));
  // Saved non-contiguous (stride (1, 4)): arange(12).reshape(3, 4).T.
  std::vector<int32_t> tview = ReadAll<int32_t>(*reader, "model.tview");
  ASSERT_EQ(tview.size(), 12u);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 3; ++j) EXPECT_EQ(tview[i * 3 + j], j * 4 + i);
  }
  EXPECT_EQ(ReadAll<int64_t>(*reader, "model.slice"), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(ReadAll<float>(*reader, "optim.state.0.step"), (std::vector<float>{5.0f}));
  for (const char* k : {"optim.param_groups.0.lr", "optim.param_groups.0.params", "step"}) {
    EXPECT_NE(reader->metadata().FindBytes(k), nullptr) << k;
  }
}

INSTANTIATE_TEST_SUITE_P(FullVariants, FullVariant, ::testing::Values("pt2.6_py3.13", "pt2.14_py3.14"));

TEST(MultiVersion, ZstdRecordsAreDecoded) {
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(FixturePath("dcp-multiversion/pt2.14_py3.14_zstd")));
  const TensorEntry* w = reader->metadata().FindTensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->chunks[0].location.transforms, (std::vector<std::string>{"stream.zstd/1"}));
}

}  // namespace
}  // namespace shardcast
