// Tests of client/manifest_json: a manifest survives ManifestToJson -> ManifestFromJson, and
// documents with a member missing or of the wrong type are refused naming it (never read as a
// default); requests read every field and refuse wrong types.
#include "client/manifest_json.h"

#include <string>

#include "common/json.h"
#include "common/status_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reshard/layout.h"

namespace shardcast {
namespace {

using ::testing::HasSubstr;

Manifest TwoShards() {
  Manifest m;
  m.request_id = "abc";
  m.lease_id = "lease";
  m.digest = "0123456789abcdef0123456789abcdef";
  m.endpoints = {"h0:1", "h1:2"};
  m.opaque = {"extra_state"};
  m.notes = {"model.w: sections:0:2 inferred from the stored chunk grid"};
  ShardEntry a;
  a.name = "w";
  a.key = "model.w";
  a.dtype = "float32";
  a.rule = "split:0";
  a.shape = {2, 3};
  a.nbytes = 24;
  a.crc32c = 0xdeadbeef;
  a.owner_rank = 1;
  ShardEntry b = a;
  b.name = "b";
  b.shape = {3};
  b.nbytes = 12;
  b.owner_rank = 0;
  m.shards = {a, b};
  m.total_bytes = 36;
  return m;
}

// The manifest's JSON with one shard member replaced.
std::string WithShardMember(const std::string& key, Json value) {
  Json j = ManifestToJson(TwoShards());
  Json shards = Json::Array();
  bool first = true;
  for (const Json& s : j.Find("shards")->items()) {
    Json copy = s;
    if (first) copy.Set(key, value);
    first = false;
    shards.Append(std::move(copy));
  }
  j.Set("shards", std::move(shards));
  return j.Dump();
}

TEST(ManifestJsonTest, RoundTripKeepsEveryField) {
  SC_ASSERT_OK_AND_ASSIGN(const Manifest m, ManifestFromJson(ManifestToJson(TwoShards()).Dump()));
  EXPECT_EQ(m.request_id, "abc");
  EXPECT_EQ(m.lease_id, "lease");
  EXPECT_EQ(m.digest, TwoShards().digest);
  EXPECT_EQ(m.endpoints, TwoShards().endpoints);
  EXPECT_EQ(m.opaque, TwoShards().opaque);
  EXPECT_EQ(m.notes, TwoShards().notes);
  EXPECT_EQ(m.total_bytes, 36u);
  ASSERT_EQ(m.shards.size(), 2u);
  EXPECT_EQ(m.shards[0].name, "w");
  EXPECT_EQ(m.shards[0].key, "model.w");
  EXPECT_EQ(m.shards[0].rule, "split:0");
  EXPECT_EQ(m.shards[0].shape, (Shape{2, 3}));
  EXPECT_EQ(m.shards[0].crc32c, 0xdeadbeefu);
  EXPECT_EQ(m.shards[0].owner_rank, 1);
  EXPECT_EQ(m.shards[1].nbytes, 12u);
}

TEST(ManifestJsonTest, WronglyTypedOrMissingMembersAreRefusedNamingThem) {
  struct Case {
    std::string key;
    Json value;
    std::string needle;
  } cases[] = {
      {"name", Json(int64_t{7}), "shards[0].name"},
      {"dtype", Json(), "shards[0].dtype"},
      {"nbytes", Json(-1), "shards[0].nbytes"},
      {"nbytes", Json("24"), "shards[0].nbytes"},
      {"crc32c", Json(int64_t{1} << 40), "shards[0].crc32c"},
      {"owner_rank", Json(int64_t{1} << 40), "shards[0].owner_rank"},
      {"shape", Json("2x3"), "shards[0].shape"},
      {"shape", Json::ArrayOf(std::vector<std::string>{"2", "3"}), "shards[0].shape"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Manifest> m = ManifestFromJson(WithShardMember(c.key, c.value));
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << c.key;
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(c.needle)) << m.status();
  }
  EXPECT_EQ(ManifestFromJson("[]").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ManifestFromJson("{\"shards\": []}").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(ManifestFromJson("{not json").ok());
}

TEST(ManifestJsonTest, TopLevelMembersOfTheWrongTypeAreRefused) {
  for (const auto& [key, value] : std::vector<std::pair<std::string, Json>>{
           {"endpoints", Json::ArrayOf(std::vector<int64_t>{7})},
           {"lease_id", Json(int64_t{3})},
           {"total_bytes", Json("36")}}) {
    Json j = ManifestToJson(TwoShards());
    j.Set(key, value);
    absl::StatusOr<Manifest> m = ManifestFromJson(j.Dump());
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(key)) << m.status();
  }
}

TEST(ManifestJsonTest, ServerChecksApplyToo) {
  // 2 x 3 float32 is 24 bytes, not 25; owner 5 has no endpoint.
  absl::StatusOr<Manifest> m = ManifestFromJson(WithShardMember("nbytes", Json(25)));
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("the manifest says 25"));
  m = ManifestFromJson(WithShardMember("owner_rank", Json(5)));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("names loader rank 5 of 2"));
}

TEST(ShardRequestJsonTest, ReadsEveryField) {
  SC_ASSERT_OK_AND_ASSIGN(const ShardRequestSpec spec,
                          ShardRequestFromJson(R"({"tp_size": 4, "tp_rank": 2, "layout": "megatron",
                              "rules": ["a=split:0"], "prefix": "model.", "renames": ["model.="],
                              "unstack": true, "dtype": "bf16"})"));
  EXPECT_EQ(spec.tp_size, 4);
  EXPECT_EQ(spec.tp_rank, 2);
  EXPECT_EQ(spec.layout, "megatron");
  EXPECT_EQ(spec.rules, std::vector<std::string>{"a=split:0"});
  EXPECT_EQ(spec.prefix, "model.");
  EXPECT_EQ(spec.renames, std::vector<std::string>{"model.="});
  EXPECT_TRUE(spec.unstack);
  EXPECT_EQ(spec.dtype, "bf16");
  SC_ASSERT_OK_AND_ASSIGN(const ShardRequestSpec defaults, ShardRequestFromJson("{}"));
  EXPECT_EQ(defaults.tp_size, 1);
  EXPECT_TRUE(defaults.layout.empty());
}

TEST(ShardRequestJsonTest, ReadsBoxes) {
  SC_ASSERT_OK_AND_ASSIGN(const ShardRequestSpec spec, ShardRequestFromJson(R"({"dtype": "fp32", "boxes": [
      {"name": "w#0", "key": "layers.w", "offsets": [1, 0, 8], "sizes": [1, 16, 8], "dtype": "bf16"},
      {"name": "step", "key": "step"}]})"));
  ASSERT_EQ(spec.boxes.size(), 2u);
  EXPECT_EQ(spec.boxes[0], (BoxSpec{"w#0", "layers.w", {1, 0, 8}, {1, 16, 8}, "bf16"}));
  EXPECT_EQ(spec.boxes[1], (BoxSpec{"step", "step", {}, {}, ""}));
  EXPECT_TRUE(spec.is_box_request());
  EXPECT_EQ(spec.dtype, "fp32");
}

TEST(ShardRequestJsonTest, WrongTypesAreRefusedNamingTheField) {
  for (const auto& [text, needle] : std::vector<std::pair<std::string, std::string>>{
           {R"({"tp_size": "2"})", "tp_size"},
           {R"({"tp_rank": 1.5})", "tp_rank"},
           {R"({"rules": ["a=split:0", 3]})", "rules"},
           {R"({"renames": "a=b"})", "renames"},
           {R"({"layout": 1})", "layout"},
           {R"({"unstack": 1})", "unstack"},
           {R"({"glu": "yes"})", "glu"},
           {R"({"boxes": {}})", "boxes: expected an array"},
           {R"({"boxes": [1]})", "boxes[0]: expected an object"},
           {R"({"boxes": [{"name": "a", "offsets": [0, 1.5]}]})", "boxes[0].offsets"},
           {R"({"boxes": [{"name": "a", "sizes": "4"}]})", "boxes[0].sizes"},
           {R"({"boxes": [{"name": 3}]})", "name"}}) {
    absl::StatusOr<ShardRequestSpec> spec = ShardRequestFromJson(text);
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(std::string(spec.status().message()), HasSubstr(needle)) << text;
  }
}


TEST(ShardRequestJsonTest, GluBecomesFc1RulesBelowTheExplicitOnes) {
  SC_ASSERT_OK_AND_ASSIGN(const ShardRequestSpec yes, ShardRequestFromJson(R"({"glu": true, "rules": ["a=split:0"]})"));
  std::vector<std::string> want = Layout::GluRules(true);
  ASSERT_FALSE(want.empty());
  EXPECT_THAT(want.back(), HasSubstr("=sections:0:2@stacked"));
  want.push_back("a=split:0");  // last: takes precedence
  EXPECT_EQ(yes.rules, want);
  SC_ASSERT_OK_AND_ASSIGN(const ShardRequestSpec no, ShardRequestFromJson(R"({"glu": false})"));
  EXPECT_EQ(no.rules, Layout::GluRules(false));
  SC_ASSERT_OK_AND_ASSIGN(const ShardRequestSpec unset, ShardRequestFromJson(R"({"glu": null})"));
  EXPECT_TRUE(unset.rules.empty());
}

}  // namespace
}  // namespace shardcast
