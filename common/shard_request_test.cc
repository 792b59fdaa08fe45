#include "common/shard_request.h"

#include <cstdint>
#include <string>

#include "common/status_testutil.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

void ExpectInvalid(const ShardRequestSpec& s, const std::string& needle) {
  absl::Status st = ValidateShardRequest(s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
}

TEST(ValidateShardRequest, AcceptsOrdinaryRequests) {
  ShardRequestSpec s;
  s.tp_size = 8;
  s.tp_rank = 7;
  s.layout = "megatron";
  s.rules = {".*fc1.weight=sections:0:2"};
  s.renames = {"model.=m."};
  SC_EXPECT_OK(ValidateShardRequest(s));
}

TEST(ValidateShardRequest, TpBoundsWithoutOverflow) {
  ShardRequestSpec s;
  s.tp_size = int64_t{1} << 31;  // was narrowed to int: -2^31, and tp_size - 1 overflowed
  ExpectInvalid(s, "tp_size: 2147483648 is not in 1..65536");
  s.tp_size = 0;
  ExpectInvalid(s, "tp_size: 0");
  s.tp_size = 2;
  s.tp_rank = 2;
  ExpectInvalid(s, "tp_rank 2 is not in 0..1");
  s.tp_rank = -1;
  ExpectInvalid(s, "tp_rank -1");
}

TEST(ValidateShardRequest, SizeLimitsNameTheField) {
  ShardRequestSpec s;
  s.rules.assign(kMaxRules + 1, "x=split:0");
  ExpectInvalid(s, "rules: 65 entries, more than the limit of 64");
  s.rules = {std::string(kMaxRuleBytes + 1, 'a')};
  ExpectInvalid(s, "rules[0]: ");
  s.rules.clear();
  s.renames.assign(kMaxRenames + 1, "a=b");
  ExpectInvalid(s, "renames: 65 entries");
  s.renames = {"a=b", std::string(kMaxRenameBytes + 1, 'a')};
  ExpectInvalid(s, "renames[1]: 1025 bytes");
  s.renames.clear();
  s.prefix.assign(kMaxPrefixBytes + 1, 'p');
  ExpectInvalid(s, "prefix: 1025 bytes");
  s.prefix.clear();
  s.layout_text.assign(kMaxLayoutTextBytes + 1, '#');
  ExpectInvalid(s, "layout_text: ");
  s.layout_text = "x split:0";
  s.layout = "megatron";
  ExpectInvalid(s, "not both");
  s.layout.assign(kMaxLayoutNameBytes + 1, 'n');
  s.layout_text.clear();
  ExpectInvalid(s, "layout: 65 bytes");
}

TEST(ValidateShardRequest, TotalBytes) {
  ShardRequestSpec s;
  s.layout_text.assign(kMaxLayoutTextBytes, '#');
  s.renames.assign(kMaxRenames, std::string(kMaxRenameBytes, 'r'));  // 64 KiB more
  s.prefix = "p";
  ExpectInvalid(s, "request (all fields)");
  s.prefix.clear();
  SC_EXPECT_OK(ValidateShardRequest(s));
}

ShardRequestSpec TwoBoxes() {
  ShardRequestSpec s;
  s.boxes = {BoxSpec{"a", "w", {0, 4}, {2, 4}, ""}, BoxSpec{"b", "w", {2, 0}, {2, 8}, "bf16"}};
  return s;
}

TEST(ValidateShardRequest, AcceptsBoxRequests) {
  ShardRequestSpec s = TwoBoxes();
  s.dtype = "fp32";
  SC_EXPECT_OK(ValidateShardRequest(s));
  s.boxes.push_back(BoxSpec{"scalar", "step", {}, {}, ""});  // a scalar: rank 0
  SC_EXPECT_OK(ValidateShardRequest(s));
}

TEST(ValidateShardRequest, BoxRequestsLeaveLayoutFieldsUnset) {
  ShardRequestSpec s = TwoBoxes();
  s.tp_size = 2;
  s.rules = {"x=split:0"};
  s.unstack = true;
  ExpectInvalid(s, "must stay unset: tp_size/tp_rank rules unstack");
}

TEST(ValidateShardRequest, BoxShapesAreChecked) {
  ShardRequestSpec s = TwoBoxes();
  s.boxes[1].name = "a";
  ExpectInvalid(s, "boxes[1]: the name 'a' is given to two boxes");
  s = TwoBoxes();
  s.boxes[0].name.clear();
  ExpectInvalid(s, "boxes[0]: empty name");
  s = TwoBoxes();
  s.boxes[1].sizes.pop_back();
  ExpectInvalid(s, "boxes[1] (b): 2 offsets but 1 sizes");
  s = TwoBoxes();
  s.boxes[0].offsets[1] = -1;
  ExpectInvalid(s, "boxes[0] (a): dim 1 offset -1");
  s = TwoBoxes();
  s.boxes[0].offsets[0] = INT64_MAX;
  ExpectInvalid(s, "boxes[0] (a): dim 0 offset 9223372036854775807 size 2");
  s = TwoBoxes();
  s.boxes[0].offsets.assign(kMaxBoxRank + 1, 0);
  s.boxes[0].sizes.assign(kMaxBoxRank + 1, 1);
  ExpectInvalid(s, "boxes[0]: 65 dims");
  s = TwoBoxes();
  s.boxes[0].key.assign(kMaxBoxStringBytes + 1, 'k');
  ExpectInvalid(s, "boxes[0].key: 1025 bytes");
}

TEST(ValidateShardRequest, BoxCountAndBytesAreBounded) {
  ShardRequestSpec s;
  for (size_t i = 0; i <= kMaxBoxes; ++i) s.boxes.push_back(BoxSpec{std::to_string(i), "w", {0}, {1}, ""});
  ExpectInvalid(s, "boxes: 16385 entries");
  s.boxes.resize(kMaxBoxes);
  SC_EXPECT_OK(ValidateShardRequest(s));
  for (size_t i = 0; i < 4000; ++i) s.boxes[i].key.assign(kMaxBoxStringBytes, 'k');  // 4 MB of keys
  ExpectInvalid(s, "box request (names, keys, dtypes and 20 bytes a dim)");
  // Dims count too: 16384 boxes of 10 dims and short names count about 16384 * (8 + 1 + 200 + 16) bytes.
  s.boxes.resize(kMaxBoxes);
  for (size_t i = 0; i < s.boxes.size(); ++i) {
    s.boxes[i] = BoxSpec{std::to_string(i % 100), "w", std::vector<int64_t>(10, 0), std::vector<int64_t>(10, 1), ""};
    s.boxes[i].name += "/" + std::to_string(i);  // unique
  }
  ExpectInvalid(s, "box request (names, keys, dtypes and 20 bytes a dim)");
}

}  // namespace
}  // namespace shardcast
