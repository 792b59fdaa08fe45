// Tests of proto/request_convert: every field survives the round trip, and the wire's uint32
// numbers reach ValidateShardRequest unchanged.
#include "proto/request_convert.h"

#include <limits>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

ShardRequestSpec EveryFieldSet() {
  ShardRequestSpec spec;
  spec.tp_size = 4;
  spec.tp_rank = 3;
  spec.layout_text = "layers\\..*\\.weight  split:0\n";
  spec.rules = {"a.*=split:1", "b=replicate"};
  spec.prefix = "model.";
  spec.renames = {"model.=", "x=y"};
  spec.unstack = true;
  spec.dtype = "bf16";
  return spec;
}

void ExpectSameSpec(const ShardRequestSpec& a, const ShardRequestSpec& b) {
  EXPECT_EQ(a.tp_size, b.tp_size);
  EXPECT_EQ(a.tp_rank, b.tp_rank);
  EXPECT_EQ(a.layout, b.layout);
  EXPECT_EQ(a.layout_text, b.layout_text);
  EXPECT_EQ(a.rules, b.rules);
  EXPECT_EQ(a.prefix, b.prefix);
  EXPECT_EQ(a.renames, b.renames);
  EXPECT_EQ(a.unstack, b.unstack);
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.boxes, b.boxes);
}

TEST(RequestConvertTest, EveryFieldSurvivesTheRoundTrip) {
  const ShardRequestSpec spec = EveryFieldSet();
  const v1::ShardRequest proto = ShardRequestToProto(spec);
  EXPECT_EQ(proto.tp_size(), 4u);
  EXPECT_EQ(proto.rules_size(), 2);
  EXPECT_EQ(proto.renames(1), "x=y");
  ExpectSameSpec(ShardRequestFromProto(proto), spec);
}

TEST(RequestConvertTest, ThroughTheWireBytesToo) {
  const ShardRequestSpec spec = EveryFieldSet();
  v1::ShardRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(ShardRequestToProto(spec).SerializeAsString()));
  ExpectSameSpec(ShardRequestFromProto(parsed), spec);
}

TEST(RequestConvertTest, BoxesSurviveTheWire) {
  ShardRequestSpec spec;
  spec.dtype = "fp32";
  spec.boxes = {BoxSpec{"w#0", "decoder.layers.mlp.linear_fc1.weight", {1, 0, 8}, {1, 16, 8}, "bf16"},
                BoxSpec{"scalar", "step", {}, {}, ""}};
  v1::ShardRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(ShardRequestToProto(spec).SerializeAsString()));
  ASSERT_EQ(parsed.boxes_size(), 2);
  EXPECT_EQ(parsed.boxes(0).offsets(2), 8);
  ExpectSameSpec(ShardRequestFromProto(parsed), spec);
}

TEST(RequestConvertTest, PresetNameIsKeptApartFromText) {
  ShardRequestSpec spec;
  spec.layout = "megatron";
  const ShardRequestSpec back = ShardRequestFromProto(ShardRequestToProto(spec));
  EXPECT_EQ(back.layout, "megatron");
  EXPECT_TRUE(back.layout_text.empty());
}

TEST(RequestConvertTest, LargeWireNumbersAreWidenedNotWrapped) {
  v1::ShardRequest proto;
  proto.set_tp_size(std::numeric_limits<uint32_t>::max());
  proto.set_tp_rank(std::numeric_limits<uint32_t>::max());
  const ShardRequestSpec spec = ShardRequestFromProto(proto);
  EXPECT_EQ(spec.tp_size, int64_t{std::numeric_limits<uint32_t>::max()});
  EXPECT_EQ(absl::StatusCode::kInvalidArgument, ValidateShardRequest(spec).code());
}

}  // namespace
}  // namespace shardcast
