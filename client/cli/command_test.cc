// Tests of the CLI's shared pieces: Execute's exit codes (help, usage error, run error), the
// request flags as both reshard and fetch read them, the --out/--digest rule and the ShardSink
// (digests of the bytes given, the safetensors file appearing only once finished), the layout
// and rule checks of the request flags, and the unused-rule finder.
#include "client/cli/command.h"

#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "client/cli/request_flags.h"
#include "client/cli/shard_sink.h"
#include "client/cli/unused_rules.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/status_testutil.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace shardcast::cli {
namespace {

using ::testing::HasSubstr;

// A command that records what happened to it and fails where told.
class ProbeCommand final : public Command {
 public:
  std::string name() const override { return "probe"; }
  std::string usage() const override { return "shardcast probe --n N"; }
  std::string description() const override { return "a test command"; }
  void AddFlags(ArgParser& flags) const override { flags.AddFlag("n", "N", "a number"); }
  absl::Status Parse(const ArgParser& flags) override {
    SC_ASSIGN_OR_RETURN(n, flags.GetInt("n"));
    return absl::OkStatus();
  }
  absl::Status Run() override {
    ran = true;
    return n < 0 ? absl::NotFoundError("negative") : absl::OkStatus();
  }
  int64_t n = 0;
  bool ran = false;
};

TEST(ExecuteTest, ExitCodesFollowWhereItFailed) {
  ProbeCommand ok;
  EXPECT_EQ(Execute(ok, {"--n", "3"}), 0);
  EXPECT_TRUE(ok.ran);
  EXPECT_EQ(ok.n, 3);

  ProbeCommand help;
  EXPECT_EQ(Execute(help, {"--help"}), 0);
  EXPECT_FALSE(help.ran);

  ProbeCommand unknown_flag;
  EXPECT_EQ(Execute(unknown_flag, {"--bogus"}), 2);
  EXPECT_FALSE(unknown_flag.ran);

  ProbeCommand bad_value;
  EXPECT_EQ(Execute(bad_value, {"--n", "x"}), 2);
  EXPECT_FALSE(bad_value.ran);

  ProbeCommand run_error;
  EXPECT_EQ(Execute(run_error, {"--n", "-1"}), 1);
  EXPECT_TRUE(run_error.ran);
}

absl::StatusOr<ShardRequestSpec> ParseRequest(const std::vector<std::string>& args) {
  ArgParser flags("shardcast t", "", "");
  AddRequestFlags(flags, {"megatron", "layout"});
  SC_RETURN_IF_ERROR(flags.Parse(args));
  return RequestFromFlags(flags);
}

TEST(RequestFlagsTest, EveryFlagReachesTheRequest) {
  SC_ASSERT_OK_AND_ASSIGN(
      const ShardRequestSpec spec,
      ParseRequest({"--tp", "4", "--rank", "3", "--rule", "a=split:0", "--rule", "b=replicate", "--prefix", "model.",
                    "--rename", "model.=m.", "--unstack", "--dtype", "bf16"}));
  EXPECT_EQ(spec.tp_size, 4);
  EXPECT_EQ(spec.tp_rank, 3);
  EXPECT_EQ(spec.layout, "megatron");  // the command's default
  EXPECT_EQ(spec.rules, (std::vector<std::string>{"a=split:0", "b=replicate"}));
  EXPECT_EQ(spec.prefix, "model.");
  EXPECT_EQ(spec.renames, std::vector<std::string>{"model.=m."});
  EXPECT_TRUE(spec.unstack);
  EXPECT_EQ(spec.dtype, "bf16");
}

TEST(RequestFlagsTest, TpAndRankAreRequiredIntegersTakenAsGiven) {
  EXPECT_THAT(std::string(ParseRequest({"--tp", "2"}).status().message()), HasSubstr("--tp and --rank are required"));
  EXPECT_EQ(ParseRequest({"--tp", "two", "--rank", "0"}).status().code(), absl::StatusCode::kInvalidArgument);
  // Out of range is not refused here: ValidateShardRequest (fetch) or reshard's own check names it.
  SC_ASSERT_OK_AND_ASSIGN(const ShardRequestSpec spec, ParseRequest({"--tp", "4294967296", "--rank", "7"}));
  EXPECT_EQ(spec.tp_size, int64_t{4294967296});
}

TEST(RequestFlagsTest, BadLayoutOrRuleIsRefusedNamingTheFlag) {
  const std::vector<std::string> base = {"--tp", "1", "--rank", "0"};
  auto with = [&](std::vector<std::string> extra) {
    extra.insert(extra.begin(), base.begin(), base.end());
    return ParseRequest(extra).status();
  };
  EXPECT_THAT(std::string(with({"--layout", "megatronn"}).message()), HasSubstr("--layout: layout 'megatronn'"));
  EXPECT_THAT(std::string(with({"--rule", "x(=split:0"}).message()), HasSubstr("--rule: bad pattern 'x('"));
  EXPECT_THAT(std::string(with({"--rule", "x=split:q"}).message()), HasSubstr("--rule"));
  EXPECT_EQ(with({"--rule", "noequals"}).code(), absl::StatusCode::kInvalidArgument);
  SC_EXPECT_OK(with({"--layout", "replicate", "--rule", "x=split:0"}));
  // fetch's default layout is the server's: only the rules are checked.
  ArgParser flags("shardcast t", "", "");
  AddRequestFlags(flags, {"", "layout"});
  SC_ASSERT_OK(flags.Parse({"--tp", "1", "--rank", "0", "--rule", "x=split:0"}));
  SC_EXPECT_OK(RequestFromFlags(flags).status());
}

TEST(UnusedRulesTest, NamesRulesThatDecideNoKey) {
  const std::vector<std::string> keys = {"a.weight", "a.bias", "b.weight"};
  // Later rules win: "a\\..*" decides a.bias only; ".*weight" decides both weights.
  SC_ASSERT_OK_AND_ASSIGN(
      std::vector<UnusedRule> unused,
      FindUnusedRules({"typo.*=split:0", "a\\.weight=split:1", "a\\..*=split:0", ".*weight=replicate"}, keys));
  ASSERT_EQ(unused.size(), 2u);
  EXPECT_EQ(unused[0].rule, "typo.*=split:0");
  EXPECT_THAT(unused[0].reason, HasSubstr("matches no selected tensor"));
  EXPECT_EQ(unused[1].rule, "a\\.weight=split:1");
  EXPECT_THAT(unused[1].reason, HasSubstr("taken by a later --rule"));
  SC_ASSERT_OK_AND_ASSIGN(unused, FindUnusedRules({"a\\..*=split:0", "b.weight=split:1"}, keys));
  EXPECT_TRUE(unused.empty());
  EXPECT_FALSE(FindUnusedRules({"x(=split:0"}, keys).ok());
}

TEST(UnusedRulesTest, StrictTurnsTheWarningIntoAnErrorListingThem) {
  SC_EXPECT_OK(ReportUnusedRules({}, /*strict=*/true));
  const absl::Status s = ReportUnusedRules({{"p=split:0", "its pattern matches no selected tensor"}}, /*strict=*/true);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("'p=split:0'"));
  SC_EXPECT_OK(ReportUnusedRules({{"p=split:0", "x"}}, /*strict=*/false));  // a warning on stderr only
}

absl::StatusOr<OutputFlags> ParseOutput(const std::vector<std::string>& args) {
  ArgParser flags("shardcast t", "", "");
  AddOutputFlags(flags);
  SC_RETURN_IF_ERROR(flags.Parse(args));
  return OutputFromFlags(flags);
}

TEST(OutputFlagsTest, ExactlyOneOfOutAndDigest) {
  EXPECT_FALSE(ParseOutput({}).ok());
  EXPECT_FALSE(ParseOutput({"--digest", "--out", "x.safetensors"}).ok());
  SC_ASSERT_OK_AND_ASSIGN(const OutputFlags digest, ParseOutput({"--digest", "--json"}));
  EXPECT_TRUE(digest.digest);
  EXPECT_TRUE(digest.json);
  EXPECT_TRUE(digest.out.empty());
}

Json Entry(const std::string& name) {
  Json t = Json::Object();
  t.Set("name", name);
  return t;
}

TEST(ShardSinkTest, DigestsTheBytesGivenInOrder) {
  OutputFlags flags;
  flags.digest = true;
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShardSink> sink, ShardSink::Open(flags, {}, {}));
  SC_ASSERT_OK(sink->Add(Entry("a"), "abc"));
  SC_ASSERT_OK(sink->Add(Entry("b"), ""));
  SC_ASSERT_OK(sink->Finish());
  const Json tensors = sink->TakeTensors();
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_EQ(tensors[0].Find("name")->as_string(), "a");
  EXPECT_EQ(tensors[0].Find("sha256")->as_string(), Sha256Hex("abc"));
  EXPECT_EQ(tensors[1].Find("sha256")->as_string(), Sha256Hex(""));
}

TEST(ShardSinkTest, WritesTheSafetensorsFileOnlyWhenFinished) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp ? tmp : "/tmp") + "/sink_test.safetensors";
  OutputFlags flags;
  flags.out = path;
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShardSink> sink,
                          ShardSink::Open(flags, {{"w", DType::kFloat32, {2}}}, {{"written_by", "test"}}));
  struct stat st;
  SC_ASSERT_OK(sink->Add(Entry("w"), std::string(8, '\1')));
  EXPECT_NE(::stat(path.c_str(), &st), 0);  // not before Finish
  SC_ASSERT_OK(sink->Finish());
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_GT(st.st_size, 8);
  EXPECT_EQ(sink->TakeTensors()[0].Find("sha256"), nullptr);  // no --digest
  // The bytes declared and the bytes given must agree.
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShardSink> short_sink,
                          ShardSink::Open(flags, {{"w", DType::kFloat32, {2}}}, {}));
  SC_ASSERT_OK(short_sink->Add(Entry("w"), std::string(4, '\1')));
  EXPECT_FALSE(short_sink->Finish().ok());
}

}  // namespace
}  // namespace shardcast::cli
