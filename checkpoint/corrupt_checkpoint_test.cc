// The corrupted-checkpoint corpus: each case copies a real PyTorch checkpoint, breaks it in one
// way, and checks that opening and reading it yields that case's own named error (status code
// and message), never a crash, a hang or silently wrong data. A final test checks that reading
// never modifies the checkpoint folder.
#include <sys/stat.h>
#include <zstd.h>
#include <unistd.h>

#include <functional>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "checkpoint/digest.h"
#include "checkpoint/reader.h"
#include "checkpoint/test_fixtures.h"
#include "checkpoint/torch_record.h"
#include "common/sha256.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

using testing::FixturePath;
using testing::ReadFileOrDie;
using testing::WriteFileOrDie;

// Replaces every occurrence of `from` (which must occur) with `to` in the file.
void Patch(const std::string& path, const std::string& from, const std::string& to) {
  std::string s = ReadFileOrDie(path);
  size_t n = 0;
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
    ++n;
  }
  ASSERT_GT(n, 0u) << "pattern not found in " << path;
  WriteFileOrDie(path, s);
}

void Truncate(const std::string& path, double keep) {
  std::string s = ReadFileOrDie(path);
  WriteFileOrDie(path, s.substr(0, static_cast<size_t>(s.size() * keep)));
}

void Overwrite(const std::string& path, size_t offset, const std::string& bytes) {
  std::string s = ReadFileOrDie(path);
  s.replace(offset, bytes.size(), bytes);
  WriteFileOrDie(path, s);
}

// Opens and reads every tensor and bytes entry; returns the first error.
absl::Status OpenAndReadAll(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<CheckpointReader>> reader = CheckpointReader::Open(dir);
  if (!reader.ok()) return reader.status();
  std::vector<const TensorEntry*> all = (*reader)->Select("");
  absl::StatusOr<std::vector<std::string>> d = DigestTensors(**reader, all);
  if (!d.ok()) return d.status();
  for (const BytesEntry& b : (*reader)->metadata().bytes_entries) {
    absl::StatusOr<std::string> p = (*reader)->ReadBytesEntry(b);
    if (!p.ok()) return p.status();
  }
  return absl::OkStatus();
}

// The storage location of chunk #`chunk` of tensor `key`, read from the (still valid) copy.
StorageLocation LocationOf(const std::string& dir, const std::string& key, size_t chunk) {
  auto reader = CheckpointReader::Open(dir);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return {};
  return (*reader)->metadata().FindTensor(key)->chunks.at(chunk).location;
}

// A zstd frame without a declared size whose RLE blocks expand 4 bytes into 128 KiB each,
// padded with such blocks to exactly `length` bytes (a decompression bomb in place of an item).
std::string ZstdBomb(size_t length) {
  std::string f("\x28\xb5\x2f\xfd", 4);
  f += '\x00';  // frame header: no content size, not single-segment
  f += '\x38';  // window descriptor: 128 KiB
  const std::string rle_block("\x02\x00\x10\x07", 4);  // RLE, 131072 x 0x07, not last
  while (f.size() + 4 <= length) f += rle_block;
  f.resize(length, '\0');
  return f;
}

// A zstd frame header declaring 2^40 decoded bytes, then garbage.
std::string ZstdDeclaringTerabyte(size_t length) {
  std::string f("\x28\xb5\x2f\xfd\xe0", 5);  // single segment, 8-byte content size
  f += std::string("\x00\x00\x00\x00\x00\x01\x00\x00", 8);  // 2^40, little-endian
  f += std::string("\x01\x00\x00", 3);  // last raw block of 0 bytes
  f.resize(length, '\0');
  return f;
}

void ReplaceWithFifo(const std::string& path) {
  ASSERT_EQ(::unlink(path.c_str()), 0);
  ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
}

struct Corruption {
  std::string name;
  std::string fixture;  // under dcp-multiversion/
  std::function<void(const std::string& dir)> apply;
  absl::StatusCode code;
  std::string message;  // a substring the error must contain
};

const std::string kMin = "min_pt2.14_py3.14";
const std::string kZstd = "pt2.14_py3.14_zstd";

std::vector<Corruption> Corpus() {
  using C = absl::StatusCode;
  return {
      {"truncated_metadata", kMin, [](const std::string& d) { Truncate(d + "/.metadata", 0.5); },
       C::kInvalidArgument, "pickle truncated"},
      {"empty_metadata", kMin, [](const std::string& d) { WriteFileOrDie(d + "/.metadata", ""); },
       C::kInvalidArgument, "no STOP opcode"},
      {"unknown_global", kMin, [](const std::string& d) { Patch(d + "/.metadata", "bfloat16", "evil_fn_"); },
       C::kInvalidArgument, "global 'torch.evil_fn_', which is not on the allow-list"},
      {"forbidden_opcode_inst", kMin, [](const std::string& d) { Overwrite(d + "/.metadata", 11, "i"); },
       C::kInvalidArgument, "opcode INST is not allowed"},
      {"not_a_metadata_object", kMin, [](const std::string& d) { WriteFileOrDie(d + "/.metadata", "\x80\x02K\x07."); },
       C::kInvalidArgument, "top-level object should be a DCP Metadata"},
      {"truncated_data_file", kMin, [](const std::string& d) { Truncate(d + "/__0_0.distcp", 0.5); },
       C::kOutOfRange, "passes the end of the file"},
      {"record_length_past_end", kMin,
       [](const std::string& d) { Patch(d + "/.metadata", std::string("M\x29\x06", 3), "M\xff\xff"); },
       C::kOutOfRange, "passes the end of the file"},
      {"bad_local_header_signature", kMin, [](const std::string& d) { Overwrite(d + "/__0_0.distcp", 0, "XXXX"); },
       C::kDataLoss, "bad local header signature"},
      {"bad_eocd_signature", kMin, [](const std::string& d) { Overwrite(d + "/__0_0.distcp", 1577 - 22, "XXXX"); },
       C::kDataLoss, "no end-of-central-directory"},
      {"dtype_mismatch", kMin,
       [](const std::string& d) { Patch(d + "/.metadata", "\x8c\x08" "bfloat16", "\x8c\x07" "float16"); },
       C::kDataLoss, "record holds bfloat16 but .metadata says float16"},
      {"shape_mismatch", kMin,
       [](const std::string& d) { Patch(d + "/__0_0.distcp", std::string("K\x04K\x04\x86"), std::string("K\x02K\x08\x86")); },
       C::kDataLoss, "record holds shape [2, 8] but .metadata says [4, 4]"},
      {"storage_size_mismatch", kMin, [](const std::string& d) { Patch(d + "/__0_0.distcp", "K\x10t", "K\x08t"); },
       C::kDataLoss, "holds 32 bytes but data.pkl declares 16"},
      {"record_unknown_global", kMin, [](const std::string& d) { Patch(d + "/__0_0.distcp", "OrderedDict", "OrderedDicX"); },
       C::kInvalidArgument, "'collections.OrderedDicX', which is not on the allow-list"},
      {"missing_data_file", kMin, [](const std::string& d) { ASSERT_EQ(::unlink((d + "/__1_0.distcp").c_str()), 0); },
       C::kNotFound, "named in .metadata"},
      {"path_traversal", kMin, [](const std::string& d) { Patch(d + "/.metadata", "__0_0.distcp", "../0_0.distc"); },
       C::kPermissionDenied, "escapes the checkpoint folder"},
      {"absolute_path", kMin, [](const std::string& d) { Patch(d + "/.metadata", "__0_0.distcp", "/etc/passwd_"); },
       C::kPermissionDenied, "is not a path inside the checkpoint folder"},
      {"symlink_out_of_folder", kMin,
       [](const std::string& d) {
         std::string outside = testing::MakeTempDir("outside") + "/__0_0.distcp";
         WriteFileOrDie(outside, ReadFileOrDie(d + "/__0_0.distcp"));
         ASSERT_EQ(::unlink((d + "/__0_0.distcp").c_str()), 0);
         ASSERT_EQ(::symlink(outside.c_str(), (d + "/__0_0.distcp").c_str()), 0);
       },
       C::kPermissionDenied, "outside the checkpoint folder"},
      {"overlapping_chunks", kMin,
       [](const std::string& d) { Patch(d + "/.metadata", std::string("K\x04K\x00\x86", 5), std::string("K\x02K\x00\x86", 5)); },
       C::kInvalidArgument, "chunks overlap"},
      {"missing_chunks", kMin,
       [](const std::string& d) { Patch(d + "/.metadata", std::string("K\x08K\x04", 4), std::string("K\x09K\x04", 4)); },
       C::kInvalidArgument, "cover 32 of 36 elements"},
      {"chunk_outside_shape", kMin,
       [](const std::string& d) { Patch(d + "/.metadata", std::string("K\x04K\x00\x86", 5), std::string("K\x06K\x00\x86", 5)); },
       C::kInvalidArgument, "lies outside the shape"},
      {"corrupt_zstd_stream", kZstd,
       [](const std::string& d) { Overwrite(d + "/__0_0.distcp", 40, std::string(64, '\x7f')); },
       C::kDataLoss, "zstd"},
      {"unknown_transform", kZstd, [](const std::string& d) { Patch(d + "/.metadata", "stream.zstd/1", "stream.gzip/1"); },
       C::kUnimplemented, "uses stream transform 'stream.gzip/1'"},
      {"no_metadata_file", kMin, [](const std::string& d) { ASSERT_EQ(::unlink((d + "/.metadata").c_str()), 0); },
       C::kNotFound, "is not a DCP checkpoint"},
      {"fifo_data_file", kMin, [](const std::string& d) { ReplaceWithFifo(d + "/__0_0.distcp"); },
       C::kFailedPrecondition, "__0_0.distcp is a FIFO, not a regular file"},
      {"fifo_metadata", kMin, [](const std::string& d) { ReplaceWithFifo(d + "/.metadata"); },
       C::kFailedPrecondition, ".metadata is a FIFO, not a regular file"},
      {"directory_data_file", kMin,
       [](const std::string& d) {
         ASSERT_EQ(::unlink((d + "/__1_0.distcp").c_str()), 0);
         ASSERT_EQ(::mkdir((d + "/__1_0.distcp").c_str(), 0755), 0);
       },
       C::kFailedPrecondition, "__1_0.distcp is a directory, not a regular file"},
      {"fifo_tracker_file", kMin,
       [](const std::string& d) {
         ASSERT_EQ(::unlink((d + "/.metadata").c_str()), 0);
         ASSERT_EQ(::mkfifo((d + "/latest_checkpointed_iteration.txt").c_str(), 0644), 0);
       },
       C::kFailedPrecondition, "latest_checkpointed_iteration.txt is a FIFO"},
      {"huge_tracker_file", kMin,
       [](const std::string& d) {
         ASSERT_EQ(::unlink((d + "/.metadata").c_str()), 0);
         WriteFileOrDie(d + "/latest_checkpointed_iteration.txt", std::string(1 << 20, '7'));
       },
       C::kResourceExhausted, "is 1048576 bytes, more than the 4096-byte limit"},
      {"shape_of_2_pow_61_bytes", kMin,
       [](const std::string& d) {
         // w: [8, 4] bfloat16 -> [8, 2^58]; both chunks [4, 4] -> [4, 2^58]: the chunks still tile
         // the shape and the byte sizes fit int64, but a 1577-byte record cannot hold 2^61 bytes.
         const std::string big("\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x04", 10);  // LONG1 2^58
         Patch(d + "/.metadata", std::string("K\x08K\x04\x86", 5), std::string("K\x08", 2) + big + "\x86");
         Patch(d + "/.metadata", std::string("K\x04K\x04\x86", 5), std::string("K\x04", 2) + big + "\x86");
       },
       C::kDataLoss, "needs 2305843009213693952 bytes but its record"},
      {"zstd_declares_a_terabyte", kZstd,
       [](const std::string& d) {
         const StorageLocation loc = LocationOf(d, "w", 0);
         Overwrite(d + "/" + loc.relative_path, loc.offset, ZstdDeclaringTerabyte(loc.length));
       },
       C::kDataLoss, "zstd frame declares 1099511627776 decoded bytes"},
      {"zstd_bomb", kZstd,
       [](const std::string& d) {
         const StorageLocation loc = LocationOf(d, "w", 0);
         Overwrite(d + "/" + loc.relative_path, loc.offset, ZstdBomb(loc.length));
       },
       C::kDataLoss, "decompression bomb"},
      {"garbage_tracker_file", kMin,
       [](const std::string& d) {
         ASSERT_EQ(::unlink((d + "/.metadata").c_str()), 0);
         WriteFileOrDie(d + "/latest_checkpointed_iteration.txt", "forty-two\n");
       },
       C::kInvalidArgument, "expected an iteration number or 'release'"},
  };
}

class CorruptCheckpoint : public ::testing::TestWithParam<Corruption> {};

TEST_P(CorruptCheckpoint, GivesItsOwnNamedError) {
  const Corruption& c = GetParam();
  const std::string dir = testing::MakeTempDir(c.name);
  testing::CopyDir(FixturePath("dcp-multiversion/" + c.fixture), dir);
  // The pristine copy reads fine.
  ASSERT_TRUE(OpenAndReadAll(dir).ok());
  c.apply(dir);
  absl::Status s = OpenAndReadAll(dir);
  ASSERT_FALSE(s.ok()) << c.name << " was accepted";
  EXPECT_EQ(s.code(), c.code) << s;
  EXPECT_NE(s.message().find(c.message), absl::string_view::npos) << s;
}

INSTANTIATE_TEST_SUITE_P(Corpus, CorruptCheckpoint, ::testing::ValuesIn(Corpus()),
                         [](const ::testing::TestParamInfo<Corruption>& info) { return info.param.name; });

TEST(CorruptCheckpoint, FifoIsRefusedWithinASecond) {
  const std::string dir = testing::MakeTempDir("fifo_timing");
  testing::CopyDir(FixturePath("dcp-multiversion/" + kMin), dir);
  ReplaceWithFifo(dir + "/__1_0.distcp");
  const absl::Time start = absl::Now();
  absl::Status s = OpenAndReadAll(dir);  // a blocking open() would hang here (no writer)
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
}

TEST(CorruptCheckpoint, MetadataOverTheCapIsRefusedByItsSize) {
  const std::string dir = testing::MakeTempDir("metadata_cap");
  testing::CopyDir(FixturePath("dcp-multiversion/" + kMin), dir);
  ReaderOptions options;
  options.max_metadata_bytes = 900;  // the file is 938 bytes
  absl::Status s = CheckpointReader::Open(dir, options).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_NE(s.message().find(".metadata is 938 bytes, more than the 900-byte limit"), std::string::npos) << s;
  options.max_metadata_bytes = 938;
  EXPECT_TRUE(CheckpointReader::Open(dir, options).ok());
}

// Where chunk `chunk` of `key` keeps its payload: (file, absolute offset, payload bytes), from the
// record itself (for an uncompressed item).
struct PayloadSpot {
  std::string file;
  uint64_t offset;
  uint64_t length;
};
PayloadSpot PayloadOf(const std::string& dir, const std::string& key, size_t chunk) {
  const StorageLocation loc = LocationOf(dir, key, chunk);
  const std::string file = dir + "/" + loc.relative_path;
  const std::string record = ReadFileOrDie(file).substr(loc.offset, loc.length);
  auto rec = ParseTensorRecord(StringRecordSource(record), "test");
  EXPECT_TRUE(rec.ok()) << rec.status();
  EXPECT_NE(rec->data_crc32, 0u) << "the fixture should store CRCs";
  return {file, loc.offset + rec->data_offset, rec->data_length};
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::string s = ReadFileOrDie(path);
  s[offset] ^= 0x01;
  WriteFileOrDie(path, s);
}

TEST(StorageCrc, FlippedPayloadBitIsDataLossNamingFileAndKey) {
  const std::string dir = testing::MakeTempDir("crc_flip");
  testing::CopyDir(FixturePath("dcp-multiversion/" + kMin), dir);
  const PayloadSpot spot = PayloadOf(dir, "w", 1);
  FlipByte(spot.file, spot.offset + spot.length - 1);
  absl::Status s = OpenAndReadAll(dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("key 'w'"), std::string::npos) << s;
  EXPECT_NE(s.message().find("__1_0.distcp"), std::string::npos) << s;
  EXPECT_NE(s.message().find("CRC-32"), std::string::npos) << s;
  // Switched off, the same bytes are served (what happened before the check existed).
  ReaderOptions off;
  off.verify_storage_crc = false;
  auto reader = CheckpointReader::Open(dir, off);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_TRUE(DigestTensors(**reader, (*reader)->Select("")).ok());
  EXPECT_EQ((*reader)->stats().crc_verified_records, 0u);
}

TEST(StorageCrc, BlockwiseReadsJoinTheirCrcs) {
  // 4096-byte blocks over the ViT fixture: whole payloads are read in several parallel blocks
  // whose CRCs are joined; a flipped byte in a later block is still caught.
  const std::string dir = testing::MakeTempDir("crc_blocks");
  testing::CopyDir(FixturePath("dcp-torch2.11/vit_flat"), dir);
  ReaderOptions small;
  small.block_size = 4096;
  small.threads = 4;
  auto reader = CheckpointReader::Open(dir, small);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE(DigestTensors(**reader, (*reader)->Select("")).ok());
  const ReaderStats stats = (*reader)->stats();
  EXPECT_GT(stats.crc_verified_records, 0u);
  EXPECT_EQ(stats.crc_unverified_partial_records, 0u);
  // The largest payload, one byte flipped past its first block.
  const TensorEntry* biggest = nullptr;
  for (const TensorEntry& t : (*reader)->metadata().tensors) {
    if (biggest == nullptr || t.chunks[0].location.length > biggest->chunks[0].location.length) biggest = &t;
  }
  const std::string key = biggest->key;  // `biggest` dies with this reader
  const PayloadSpot spot = PayloadOf(dir, key, 0);
  ASSERT_GT(spot.length, 4096u) << "the fixture needs a payload of more than one block";
  FlipByte(spot.file, spot.offset + spot.length - 2);
  reader = CheckpointReader::Open(dir, small);
  ASSERT_TRUE(reader.ok());
  absl::Status s = DigestTensors(**reader, (*reader)->Select("")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("key '" + key + "'"), std::string::npos) << s;
}

TEST(StorageCrc, UntouchedFixturesVerifyEveryRecordTheyReadWhole) {
  for (const char* name : {"min_pt2.14_py3.14", "min_pt2.6_py3.13", "pt1.13_py3.11.2", "pt2.14_py3.14",
                           "pt2.6_py3.13", "pt2.14_py3.14_zstd"}) {
    auto reader = CheckpointReader::Open(FixturePath(std::string("dcp-multiversion/") + name));
    ASSERT_TRUE(reader.ok()) << reader.status();
    ASSERT_TRUE(DigestTensors(**reader, (*reader)->Select("")).ok()) << name;
    size_t chunks = 0;
    for (const TensorEntry& t : (*reader)->metadata().tensors) {
      for (const StoredChunk& c : t.chunks) chunks += NumElements(c.box.sizes).value() > 0;
    }
    const ReaderStats stats = (*reader)->stats();
    EXPECT_EQ(stats.crc_verified_records + stats.crc_absent_records, chunks) << name;
    EXPECT_GT(stats.crc_verified_records, 0u) << name;
    EXPECT_EQ(stats.crc_unverified_partial_records, 0u) << name;
  }
}

TEST(StorageCrc, PartialReadIsCountedNotPretended) {
  auto reader = CheckpointReader::Open(FixturePath("dcp-multiversion/" + kMin));
  ASSERT_TRUE(reader.ok()) << reader.status();
  const TensorEntry* w = (*reader)->metadata().FindTensor("w");
  std::vector<char> buf(2 * 4 * 2);
  // Rows [1, 3) of w lie in its first chunk (rows [0, 4)): a dim-0 range, read alone.
  ASSERT_TRUE((*reader)->Read({{w, Box{{1, 0}, {2, 4}}, buf.data()}}).ok());
  ReaderStats stats = (*reader)->stats();
  EXPECT_EQ(stats.crc_verified_records, 0u);
  EXPECT_EQ(stats.crc_unverified_partial_records, 1u);
  // Read whole later: verified, and no longer counted as partial.
  std::vector<char> all(w->nbytes());
  ASSERT_TRUE((*reader)->Read({{w, FullBox(w->shape), all.data()}}).ok());
  stats = (*reader)->stats();
  EXPECT_EQ(stats.crc_verified_records, 2u);
  EXPECT_EQ(stats.crc_unverified_partial_records, 0u);
}

TEST(StorageCrc, SlabsReadFrontToBackAreVerified) {
  // As the GPU loader stages a large tensor: dim-0 slabs, in order, over several Read() calls.
  const std::string dir = testing::MakeTempDir("crc_slabs");
  testing::CopyDir(FixturePath("dcp-multiversion/" + kMin), dir);
  auto read_slabs = [&](const std::string& d) -> absl::Status {
    auto reader = CheckpointReader::Open(d);
    if (!reader.ok()) return reader.status();
    const TensorEntry* w = (*reader)->metadata().FindTensor("w");  // [8, 4] bf16, chunks of 4 rows
    std::vector<char> buf(8 * 4 * 2);
    for (int64_t r0 : {0, 3, 6}) {  // slabs [0, 3), [3, 6), [6, 8): each crosses or ends a chunk
      const int64_t rows = std::min<int64_t>(3, 8 - r0);
      absl::Status s = (*reader)->Read({{w, Box{{r0, 0}, {rows, 4}}, buf.data() + r0 * 8}});
      if (!s.ok()) return s;
    }
    const ReaderStats stats = (*reader)->stats();
    EXPECT_EQ(stats.crc_verified_records, 2u);
    EXPECT_EQ(stats.crc_unverified_partial_records, 0u);
    return absl::OkStatus();
  };
  ASSERT_TRUE(read_slabs(dir).ok());
  const PayloadSpot spot = PayloadOf(dir, "w", 1);
  FlipByte(spot.file, spot.offset + spot.length - 1);  // in the last slab
  absl::Status s = read_slabs(dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("__1_0.distcp"), std::string::npos) << s;
}

TEST(StorageCrc, ZstdRecordCrcCoversTheDecodedPayload) {
  // zstd wraps the whole torch.save archive, so the ZIP CRC covers decoded bytes. Flip one
  // payload byte inside the decoded record, compress it again and pad it with a skippable frame
  // to the item's exact length: zstd decodes it fine, the CRC-32 must not match.
  const std::string dir = testing::MakeTempDir("crc_zstd");
  testing::CopyDir(FixturePath("dcp-multiversion/" + kZstd), dir);
  const StorageLocation loc = LocationOf(dir, "w", 0);
  const std::string path = dir + "/" + loc.relative_path;
  const std::string item = ReadFileOrDie(path).substr(loc.offset, loc.length);
  std::string record(1 << 20, '\0');
  const size_t decoded = ZSTD_decompress(record.data(), record.size(), item.data(), item.size());
  ASSERT_FALSE(ZSTD_isError(decoded)) << ZSTD_getErrorName(decoded);
  record.resize(decoded);
  auto rec = ParseTensorRecord(StringRecordSource(record), "test");
  ASSERT_TRUE(rec.ok()) << rec.status();
  ASSERT_NE(rec->data_crc32, 0u);
  record[rec->data_offset] ^= 0x01;
  std::string again(ZSTD_compressBound(record.size()), '\0');
  again.resize(ZSTD_compress(again.data(), again.size(), record.data(), record.size(), 19));
  ASSERT_LE(again.size() + 8, item.size()) << "recompressed record does not fit the item";
  const uint32_t pad = static_cast<uint32_t>(item.size() - again.size() - 8);
  again += std::string("\x50\x2a\x4d\x18", 4);  // skippable frame magic
  again.append(reinterpret_cast<const char*>(&pad), 4);
  again.append(pad, '\0');
  Overwrite(path, loc.offset, again);
  absl::Status s = OpenAndReadAll(dir);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("CRC-32"), std::string::npos) << s;
  EXPECT_NE(s.message().find("key 'w'"), std::string::npos) << s;
}

TEST(CorruptCheckpoint, CorpusHasAtLeastFifteenDistinctCases) {
  std::set<std::string> messages;
  for (const Corruption& c : Corpus()) messages.insert(c.message);
  EXPECT_GE(messages.size(), 15u);
}

// Fingerprint of a folder: every file's name, size, mode, mtime and content hash.
std::string Fingerprint(const std::string& dir) {
  std::string out;
  for (const char* name : {".metadata", "__0_0.distcp", "__1_0.distcp"}) {
    struct stat st;
    const std::string p = dir + "/" + name;
    if (::stat(p.c_str(), &st) != 0) continue;
    absl::StrAppend(&out, name, " ", st.st_size, " ", st.st_mode, " ", st.st_mtim.tv_sec, ".", st.st_mtim.tv_nsec, " ",
                    Sha256Hex(ReadFileOrDie(p)), "\n");
  }
  return out;
}

TEST(CorruptCheckpoint, ReadingNeverModifiesTheFolder) {
  const std::string dir = testing::MakeTempDir("untouched");
  testing::CopyDir(FixturePath("dcp-multiversion/pt2.14_py3.14"), dir);
  const std::string before = Fingerprint(dir);
  ASSERT_TRUE(OpenAndReadAll(dir).ok());
  EXPECT_EQ(Fingerprint(dir), before);
  std::string listing = ReadFileOrDie(dir + "/.metadata");  // still there, unchanged
  EXPECT_FALSE(listing.empty());
}

}  // namespace
}  // namespace shardcast
