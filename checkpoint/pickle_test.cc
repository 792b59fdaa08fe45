#include "checkpoint/pickle.h"

#include <cstdio>
#include <deque>

#include "absl/strings/str_cat.h"
#include "checkpoint/metadata_parser.h"
#include "checkpoint/test_fixtures.h"
#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

using namespace std::string_literals;
using Kind = PickleValue::Kind;

UnpickleOptions Opts(std::initializer_list<const char*> globals = {}) {
  // The options point at the set: keep each distinct set alive for the test binary's lifetime.
  static std::deque<absl::flat_hash_set<std::string>> sets;
  sets.emplace_back();
  for (const char* g : globals) sets.back().insert(g);
  UnpickleOptions o;
  o.allowed_globals = &sets.back();
  return o;
}

TEST(Unpickle, ScalarsContainersAndMemo) {
  // pickle.dumps({'a': [1, -2, 300, 2**40], 'b': ('x', None, True, 1.5, 'x')}, protocol=4)
  const std::string p = "\x80\x04\x95\x37\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01\x61\x94\x5d\x94\x28\x4b\x01\x4a\xfe\xff\xff\xff\x4d\x2c\x01\x8a\x06\x00\x00\x00\x00\x00\x01\x65\x8c\x01\x62\x94\x28\x8c\x01\x78\x94\x4e\x88\x47\x3f\xf8\x00\x00\x00\x00\x00\x00\x68\x04\x74\x94\x75\x2e"s;
  SC_ASSERT_OK_AND_ASSIGN(auto doc, Unpickle(p, Opts()));
  const PickleValue* root = doc->root();
  ASSERT_EQ(root->kind, Kind::kDict);
  const PickleValue* a = root->DictGet("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->items.size(), 4u);
  EXPECT_EQ(a->items[0]->i, 1);
  EXPECT_EQ(a->items[1]->i, -2);
  EXPECT_EQ(a->items[2]->i, 300);
  EXPECT_EQ(a->items[3]->i, int64_t{1} << 40);
  const PickleValue* b = root->DictGet("b");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->kind, Kind::kTuple);
  ASSERT_EQ(b->items.size(), 5u);
  EXPECT_EQ(b->items[0]->str, "x");
  EXPECT_EQ(b->items[1]->kind, Kind::kNone);
  EXPECT_TRUE(b->items[2]->b);
  EXPECT_DOUBLE_EQ(b->items[3]->f, 1.5);
  EXPECT_EQ(b->items[4], b->items[0]);  // fetched back from the memo
}

TEST(Unpickle, GlobalsNeedTheAllowList) {
  const std::string p = "\x80\x02" "cos\nsystem\n" "(X\x02\x00\x00\x00" "ls" "tR."s;
  absl::StatusOr<std::unique_ptr<PickleDocument>> doc = Unpickle(p, Opts());
  ASSERT_FALSE(doc.ok());
  EXPECT_NE(doc.status().message().find("'os.system', which is not on the allow-list"), std::string::npos);
  // Allowed: REDUCE builds an inert call node; nothing runs.
  SC_ASSERT_OK_AND_ASSIGN(auto ok, Unpickle(p, Opts({"os.system"})));
  EXPECT_EQ(ok->root()->kind, Kind::kCall);
  EXPECT_EQ(ok->root()->CalleeName(), "os.system");
  EXPECT_EQ(ok->root()->args->items[0]->str, "ls");
}

TEST(Unpickle, StackGlobalNewObjAndBuild) {
  // Protocol 4: torch.Size((8, 4)) and an object with a dict state.
  const std::string p =
      "\x80\x04\x8c\x05torch\x8c\x04Size\x93" "K\x08K\x04\x86\x85R"
      "\x8c\x01m\x8c\x01" "C\x93)\x81}\x8c\x01k\x8c\x01v\x73" "b" "\x86."s;
  SC_ASSERT_OK_AND_ASSIGN(auto doc, Unpickle(p, Opts({"torch.Size", "m.C"})));
  const PickleValue* root = doc->root();
  ASSERT_EQ(root->items.size(), 2u);
  EXPECT_EQ(root->items[0]->CalleeName(), "torch.Size");
  EXPECT_EQ(root->items[1]->kind, Kind::kNewObj);
  ASSERT_NE(root->items[1]->state, nullptr);
  EXPECT_EQ(root->items[1]->state->DictGet("k")->str, "v");
}

TEST(Unpickle, RefusesDangerousAndUnknownOpcodes) {
  struct Case {
    std::string bytes, message;
  };
  for (const Case& c : std::vector<Case>{
           {"\x80\x02(ios\nsystem\n.", "INST is not allowed"},
           {"\x80\x02(o.", "OBJ is not allowed"},
           {"\x80\x02" "P1\n.", "PERSID"},
           {"\x80\x02\x82\x01.", "EXT1"},
           {"\x80\x05\x97.", "out-of-band"},
           {"\x80\x02I1\n.", "protocol-0"},
           {"\x80\x02\xff.", "unknown opcode 0xff"},
           {"\x80\x09.", "unsupported pickle protocol 9"},
           {"\x80\x02K\x01", "no STOP opcode"},
           {"\x80\x02X\x05\x00\x00\x00" "ab."s, "truncated"},
           {"\x80\x02h\x05."s, "memo index 5 was never stored"},
           {"\x80\x02s.", "stack underflow"},
           {"\x80\x02K\x01K\x02.", "STOP with 2 values"},
           {"\x80\x02K\x01]a", "APPEND target is not a list"},
           {"\x80\x02Q.", "persistent ids"},
       }) {
    absl::StatusOr<std::unique_ptr<PickleDocument>> doc = Unpickle(c.bytes, Opts());
    ASSERT_FALSE(doc.ok()) << c.message;
    SCOPED_TRACE(c.message);
    EXPECT_NE(doc.status().message().find(c.message), std::string::npos) << doc.status();
  }
}

TEST(Unpickle, SelfReferenceDoesNotLoop) {
  // l = []; l.append(l): a cycle through the memo must not hang or leak.
  const std::string p = "\x80\x02]q\x00h\x00" "a."s;
  SC_ASSERT_OK_AND_ASSIGN(auto doc, Unpickle(p, Opts()));
  EXPECT_EQ(doc->root()->items[0], doc->root());
  EXPECT_FALSE(PickleDebugString(doc->root(), 6).empty());
}

TEST(Unpickle, MemoryIsBoundedRelativeToTheInput) {
  // EMPTY_LIST, POP repeated: two input bytes make one value each time; the values pile up in
  // the document. The default cap (64 bytes per input byte + 16 MiB) refuses it long before
  // the input is consumed.
  std::string bomb = "\x80\x04";
  for (int i = 0; i < (2 << 20); ++i) bomb += "]0";
  bomb += "N.";
  auto doc = Unpickle(bomb, Opts());
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.status().code(), absl::StatusCode::kResourceExhausted) << doc.status();
  EXPECT_NE(doc.status().message().find(absl::StrCat("-byte input")), std::string::npos) << doc.status();
  EXPECT_NE(doc.status().message().find(absl::StrCat(64ull * bomb.size() + (16ull << 20))), std::string::npos)
      << doc.status();
}

TEST(Unpickle, ExplicitMemoryCapCountsStringsAndContainers) {
  // A 1000-byte string: fits 1 MiB, not 512 bytes.
  const std::string p = "\x80\x04X\xe8\x03\x00\x00"s + std::string(1000, 'a') + ".";
  UnpickleOptions o = Opts();
  o.max_memory_bytes = 1 << 20;
  SC_ASSERT_OK_AND_ASSIGN(auto doc, Unpickle(p, o));
  EXPECT_GE(doc->memory_bytes(), 1000u);
  o.max_memory_bytes = 512;
  EXPECT_EQ(Unpickle(p, o).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(Unpickle, RealMetadataStaysBelowTheCap) {
  for (const char* rel : {"dcp-torch2.11/vit_tp2/.metadata", "dcp-multiversion/pt2.14_py3.14/.metadata",
                          "dcp-multiversion/pt1.13_py3.11.2/.metadata"}) {
    const std::string bytes = testing::ReadFileOrDie(testing::FixturePath(rel));
    UnpickleOptions o = Opts();
    o.allowed_globals = &MetadataAllowedGlobals();
    SC_ASSERT_OK_AND_ASSIGN(auto doc, Unpickle(bytes, o));
    const double ratio = static_cast<double>(doc->memory_bytes()) / bytes.size();
    std::printf("%s: %zu bytes -> %llu bytes of values (%.1fx)\n", rel, bytes.size(),
                static_cast<unsigned long long>(doc->memory_bytes()), ratio);
    EXPECT_LT(ratio, UnpickleOptions::kMemoryPerInputByte) << rel;
  }
}

}  // namespace
}  // namespace shardcast
