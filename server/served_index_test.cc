// ServedIndex: selection by prefix, bounded pages that cover the index exactly once, and
// ReadBytes' refusals (listed together, before any read), reply cap and `remaining`; plus the
// bytes entries of a real PyTorch 2.14 checkpoint read through CheckpointReader.
#include "server/served_index.h"

#include <map>
#include <set>

#include "checkpoint/reader.h"
#include "checkpoint/test_fixtures.h"
#include "common/status_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

using ::testing::HasSubstr;

CheckpointMetadata MakeMetadata(int tensors, const std::vector<std::pair<std::string, uint64_t>>& bytes) {
  CheckpointMetadata md;
  for (int i = 0; i < tensors; ++i) {
    TensorEntry t;
    t.key = (i % 2 ? "model.t" : "optim.t") + std::to_string(i);
    t.dtype = i % 3 ? DType::kBFloat16 : DType::kFloat32;
    t.shape = {i + 1, 3};
    md.tensors.push_back(t);
  }
  for (const auto& [key, length] : bytes) {
    BytesEntry b;
    b.key = key;
    b.location.length = length;
    md.bytes_entries.push_back(b);
  }
  for (size_t i = 0; i < md.tensors.size(); ++i) md.tensor_index[md.tensors[i].key] = i;
  return md;
}

// A reader over fixed payloads that counts its reads.
struct FakeBytes {
  std::map<std::string, std::string> payloads;
  int reads = 0;
  ServedIndex::BytesReader Reader() {
    return [this](const BytesEntry& e) -> absl::StatusOr<std::string> {
      ++reads;
      return payloads.at(e.key);
    };
  }
};

TEST(ServedIndex, SelectsByPrefixInMetadataOrder) {
  CheckpointMetadata md = MakeMetadata(6, {{"model.extra", 3}, {"optim.lr", 4}});
  FakeBytes fake;
  ServedIndex index(md, "model.", fake.Reader());
  ASSERT_EQ(index.tensors().size(), 3u);
  EXPECT_EQ(index.tensors()[0]->key, "model.t1");
  EXPECT_EQ(index.tensors()[2]->key, "model.t5");
  ASSERT_EQ(index.bytes_entries().size(), 1u);
  EXPECT_EQ(index.bytes_entries()[0]->key, "model.extra");
  SC_ASSERT_OK_AND_ASSIGN(IndexPage page, index.Page(0, 0));
  EXPECT_EQ(page.total, 4u);
  EXPECT_EQ(page.next, 0u);
  EXPECT_EQ(page.tensors.size(), 3u);
  EXPECT_EQ(page.bytes.size(), 1u);
}

// Pages of every size cover every entry once, in order, tensors before bytes entries.
TEST(ServedIndex, PagesCoverTheIndexOnce) {
  CheckpointMetadata md = MakeMetadata(7, {{"b0", 1}, {"b1", 2}, {"b2", 3}});
  ServedIndex index(md, "", FakeBytes().Reader());
  for (uint32_t per_page : {1u, 2u, 3u, 9u, 10u, 11u}) {
    std::vector<std::string> keys;
    uint64_t start = 0;
    int pages = 0;
    do {
      SC_ASSERT_OK_AND_ASSIGN(IndexPage page, index.Page(start, per_page));
      EXPECT_LE(page.tensors.size() + page.bytes.size(), per_page);
      EXPECT_EQ(page.total, 10u);
      for (const TensorEntry* t : page.tensors) keys.push_back(t->key);
      for (const BytesEntry* b : page.bytes) keys.push_back(b->key);
      ASSERT_TRUE(page.next == 0 || page.next > start);
      start = page.next;
      ++pages;
    } while (start != 0);
    EXPECT_EQ(pages, (10 + per_page - 1) / per_page) << per_page;
    ASSERT_EQ(keys.size(), 10u) << per_page;
    EXPECT_EQ(keys[0], "optim.t0");
    EXPECT_EQ(keys[6], "optim.t6");
    EXPECT_EQ(keys[7], "b0");
    EXPECT_EQ(keys[9], "b2");
  }
}

TEST(ServedIndex, PageBytesAreBoundedButNeverEmpty) {
  CheckpointMetadata md;
  for (int i = 0; i < 5; ++i) {
    BytesEntry b;
    b.key = std::string(600, 'a' + i);
    md.bytes_entries.push_back(b);
  }
  IndexLimits limits;
  limits.max_page_bytes = 1000;  // one 600-byte key per page
  ServedIndex index(md, "", FakeBytes().Reader(), limits);
  SC_ASSERT_OK_AND_ASSIGN(IndexPage page, index.Page(0, 0));
  EXPECT_EQ(page.bytes.size(), 1u);
  EXPECT_EQ(page.next, 1u);
  SC_ASSERT_OK_AND_ASSIGN(page, index.Page(4, 0));
  EXPECT_EQ(page.bytes.size(), 1u);
  EXPECT_EQ(page.next, 0u);
}

TEST(ServedIndex, PageRefusesOverCapAndPastEnd) {
  CheckpointMetadata md = MakeMetadata(2, {});
  ServedIndex index(md, "", FakeBytes().Reader());
  EXPECT_EQ(index.Page(0, 16385).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.Page(3, 0).status().code(), absl::StatusCode::kInvalidArgument);
  SC_ASSERT_OK_AND_ASSIGN(IndexPage end, index.Page(2, 0));
  EXPECT_TRUE(end.tensors.empty());
  EXPECT_EQ(end.next, 0u);
}

TEST(ServedIndex, ReadBytesReturnsPayloadsInRequestOrder) {
  CheckpointMetadata md = MakeMetadata(0, {{"model.a", 3}, {"model.b", 5}});
  FakeBytes fake;
  fake.payloads = {{"model.a", "abc"}, {"model.b", std::string("\0\x01\xff\x02z", 5)}};
  ServedIndex index(md, "model.", fake.Reader());
  SC_ASSERT_OK_AND_ASSIGN(BytesReply reply, index.ReadBytes({"model.b", "model.a"}));
  ASSERT_EQ(reply.values.size(), 2u);
  EXPECT_EQ(reply.values[0].first, "model.b");
  EXPECT_EQ(reply.values[0].second, fake.payloads["model.b"]);
  EXPECT_EQ(reply.values[1].second, "abc");
  EXPECT_TRUE(reply.remaining.empty());
}

// Every problem in one message, and nothing read.
TEST(ServedIndex, ReadBytesListsEveryProblemBeforeReading) {
  CheckpointMetadata md = MakeMetadata(2, {{"model.a", 3}, {"optim.lr", 4}});
  FakeBytes fake;
  fake.payloads = {{"model.a", "abc"}, {"optim.lr", "0.10"}};
  ServedIndex index(md, "model.", fake.Reader());
  absl::StatusOr<BytesReply> r = index.ReadBytes({"model.a", "nope", "optim.lr", "model.t1", "model.a"});
  ASSERT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("'nope' is not in the checkpoint"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("'optim.lr' is outside the service's --prefix"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("'model.t1' is a tensor"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("'model.a' is asked for twice"));
  EXPECT_EQ(fake.reads, 0);
  EXPECT_EQ(index.ReadBytes({"model.a", "model.a"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(index.ReadBytes(std::vector<std::string>(4097, "model.a")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fake.reads, 0);
}

// Past the reply cap, the rest comes back as `remaining`; asking for it again gets it all.
TEST(ServedIndex, ReadBytesCapsTheReplyAndNamesTheRest) {
  CheckpointMetadata md = MakeMetadata(0, {{"a", 40}, {"b", 40}, {"c", 40}, {"z", 5}});
  md.bytes_entries[3].location.transforms = {"stream.zstd/1"};  // size known only once read
  FakeBytes fake;
  fake.payloads = {{"a", std::string(40, 'a')}, {"b", std::string(40, 'b')}, {"c", std::string(40, 'c')},
                   {"z", std::string(70, 'z')}};
  IndexLimits limits;
  limits.max_reply_bytes = 100;
  ServedIndex index(md, "", fake.Reader(), limits);
  SC_ASSERT_OK_AND_ASSIGN(BytesReply first, index.ReadBytes({"a", "b", "c", "z"}));
  ASSERT_EQ(first.values.size(), 2u);
  EXPECT_EQ(first.remaining, (std::vector<std::string>{"c", "z"}));
  EXPECT_EQ(fake.reads, 2);  // "c"'s stored size told it would not fit: not read
  SC_ASSERT_OK_AND_ASSIGN(BytesReply second, index.ReadBytes(first.remaining));
  ASSERT_EQ(second.values.size(), 1u);  // "z" decodes to 70 bytes: 110 > 100
  EXPECT_EQ(second.remaining, std::vector<std::string>{"z"});
  SC_ASSERT_OK_AND_ASSIGN(BytesReply third, index.ReadBytes(second.remaining));
  ASSERT_EQ(third.values.size(), 1u);
  EXPECT_EQ(third.values[0].second, std::string(70, 'z'));
  EXPECT_TRUE(third.remaining.empty());
}

TEST(ServedIndex, ReadBytesRefusesAnEntryOverTheReplyCap) {
  CheckpointMetadata md = MakeMetadata(0, {{"big", 10}});
  FakeBytes fake;
  fake.payloads = {{"big", std::string(101, 'x')}};
  IndexLimits limits;
  limits.max_reply_bytes = 100;
  ServedIndex index(md, "", fake.Reader(), limits);
  absl::StatusOr<BytesReply> r = index.ReadBytes({"big"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("'big' holds 101 bytes"));
}

// The PyTorch 2.14 fixture's bytes entries, read through the reader as the service does: the
// payload is exactly the stored item (a torch.save archive).
TEST(ServedIndex, ReadsRealBytesEntries) {
  const std::string dir = testing::FixturePath("dcp-multiversion/pt2.14_py3.14");
  SC_ASSERT_OK_AND_ASSIGN(auto reader, CheckpointReader::Open(dir));
  ServedIndex index(reader->metadata(), "optim.", [&](const BytesEntry& e) { return reader->ReadBytesEntry(e); });
  std::vector<std::string> keys;
  for (const BytesEntry* b : index.bytes_entries()) keys.push_back(b->key);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()),
            (std::set<std::string>{"optim.param_groups.0.lr", "optim.param_groups.0.params"}));
  EXPECT_EQ(index.tensors().size(), 1u);  // optim.state.0.step
  SC_ASSERT_OK_AND_ASSIGN(BytesReply reply, index.ReadBytes(keys));
  ASSERT_EQ(reply.values.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const BytesEntry* e = reader->metadata().FindBytes(keys[i]);
    const std::string file = testing::ReadFileOrDie(dir + "/" + e->location.relative_path);
    EXPECT_EQ(reply.values[i].second, file.substr(e->location.offset, e->location.length)) << keys[i];
    EXPECT_EQ(reply.values[i].second.substr(0, 4), "PK\x03\x04");
  }
  EXPECT_EQ(index.ReadBytes({"step"}).status().code(), absl::StatusCode::kNotFound);  // outside "optim."
}

}  // namespace
}  // namespace shardcast
