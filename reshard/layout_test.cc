#include "reshard/layout.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "common/shard_request.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(ParseRule, AllRuleKindsRoundTrip) {
  for (const char* text : {"replicate", "opaque", "split:1", "sections:0:2", "sections:0:4,4,2,2,1", "qkv",
                           "qkv:16:4", "vocab:0:128", "split:0@stacked", "sections:1:3@stacked"}) {
    auto r = ParseRule(text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    EXPECT_EQ(r->ToString(), text);
  }
  auto s = ParseRule("split:1@stacked");
  EXPECT_EQ(s->stored_dim(), 2);
}

TEST(ParseRule, RejectsMalformed) {
  for (const char* text : {"split", "split:x", "split:-1", "sections:0", "sections:0:0", "sections:0:2,0", "qkv:16",
                           "qkv:10:4", "vocab:0", "cut:0", "opaque@stacked", "replicate:1"}) {
    EXPECT_FALSE(ParseRule(text).ok()) << text;
  }
}

// Issue 9: rule numbers were narrowed to int ("split:4294967296" became split:0, a huge qkv head
// count wrapped past validation). They are parsed as int64 and range-checked, and the error
// names the field.
TEST(ParseRule, RangeChecksInsteadOfNarrowing) {
  struct Case {
    const char* text;
    const char* needle;
  };
  for (const Case& c : std::vector<Case>{
           {"split:4294967296", "the dim D must be an integer in 0..63"},
           {"split:64", "the dim D"},
           {"split:99999999999999999999999", "the dim D"},
           {"sections:4294967296:2", "the dim D"},
           {"sections:0:4294967298", "the section count N must be an integer in 1..4096"},
           {"sections:0:4097", "the section count N"},
           {"sections:0:1,9223372036854775807", "section sizes must be integers in 1.."},
           {"qkv:4294967296:4294967296", "HEADS and GROUPS must be integers in 1..1048576"},
           {"qkv:8589934592:2", "HEADS and GROUPS"},
           {"vocab:0:1152921504606846976", "the multiple M must be an integer in 1..1048576"},
           {"vocab:0:0", "the multiple M"},
           {"vocab:4294967296:128", "the dim D"},
       }) {
    auto r = ParseRule(c.text);
    ASSERT_FALSE(r.ok()) << c.text << " parsed as " << r->ToString();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << c.text << ": " << r.status();
  }
  EXPECT_TRUE(ParseRule("split:63").ok());
  EXPECT_TRUE(ParseRule("vocab:0:1048576").ok());
  EXPECT_TRUE(ParseRule("qkv:1048576:1024").ok());
  std::string many = "sections:0:1";
  for (int i = 1; i < 4097; ++i) many += ",1";
  EXPECT_FALSE(ParseRule(many).ok());
}

TEST(Layout, PatternAndEntryLimits) {
  const std::string long_pattern(kMaxPatternBytes + 1, 'a');
  auto l = Layout::Parse(long_pattern + " split:0\n", "req");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("more than the limit of 1024"), std::string::npos) << l.status();
  std::string text;
  for (size_t i = 0; i <= kMaxLayoutEntries; ++i) text += "a" + std::to_string(i) + " split:0\n";
  auto many = Layout::Parse(text, "req");
  ASSERT_FALSE(many.ok());
  EXPECT_NE(many.status().message().find("more than 1024 rules"), std::string::npos) << many.status();
  EXPECT_FALSE(Layout::Build("", "req", std::vector<std::string>(kMaxRules + 1, "x=split:0")).ok());
  EXPECT_FALSE(Layout::Parse(std::string(kMaxLayoutTextBytes + 1, '#'), "req").ok());
}

// A pattern whose program exceeds RE2's max_mem fails to compile quickly instead of taking
// seconds and megabytes (200 such patterns blocked every client for 49 s).
TEST(Layout, HeavyPatternsFailFastUnderTheMemoryLimit) {
  const auto t0 = std::chrono::steady_clock::now();
  auto l = Layout::Parse(R"(\pL{1000}\pN{10} split:0)", "req");
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("bad pattern"), std::string::npos) << l.status();
  EXPECT_LT(secs, 1.0);
}

TEST(Layout, TotalProgramSizeIsBounded) {
  // Each pattern compiles under max_mem; together they are over the layout's budget.
  std::string text;
  for (int i = 0; i < 40; ++i) text += "x" + std::to_string(i) + R"(\pL{4} split:0)" + "\n";
  auto l = Layout::Parse(text, "req");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("RE2 instructions"), std::string::npos) << l.status();
  // The megatron preset and a few ordinary rules are far below it.
  EXPECT_TRUE(Layout::Load("megatron", std::vector<std::string>(kMaxRules, R"(.*\.linear_fc1\.weight=sections:0:2)")).ok());
}

TEST(Layout, ReadFileRefusesWhatIsNotARegularFile) {
  auto zero = Layout::ReadFile("/dev/zero");
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("not a regular file"), std::string::npos) << zero.status();
  EXPECT_FALSE(Layout::ReadFile("/").ok());
  EXPECT_EQ(Layout::ReadFile("/no/such/layout").status().code(), absl::StatusCode::kNotFound);
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/l.layout";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("x split:1\n", f);
  std::fclose(f);
  auto text = Layout::ReadFile(path);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "x split:1\n");
  auto loaded = Layout::Load(path, {"y=split:0"});
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->Describe("x"), "split:1");
  EXPECT_EQ(loaded->Describe("y"), "split:0");
}

TEST(Layout, PresetTextRoundTrips) {
  for (const std::string& name : Layout::PresetNames()) {
    EXPECT_TRUE(Layout::IsPreset(name));
    auto text = Layout::PresetText(name);
    ASSERT_TRUE(text.ok()) << text.status();
    auto a = Layout::Preset(name);
    auto b = Layout::Build(*text, "t", {});
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->ToText(), b->ToText());
  }
  EXPECT_FALSE(Layout::IsPreset("/etc/passwd"));
  EXPECT_EQ(Layout::PresetText("/etc/passwd").status().code(), absl::StatusCode::kNotFound);
}

// Issue 9: the request's `layout` was a path the server opened. A request resolves to a preset's
// text, the text it carries, or the server's default; a path is refused without being opened.
TEST(ResolveRequestLayout, NeverAFile) {
  ShardRequestSpec spec;
  auto d = ResolveRequestLayout(spec);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->server_default);
  spec.layout = "megatron";
  auto p = ResolveRequestLayout(spec);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->text, *Layout::PresetText("megatron"));
  for (const char* path : {"/etc/passwd", "/proc/self/environ", "/dev/zero", "fixtures.layout"}) {
    spec.layout = path;
    auto r = ResolveRequestLayout(spec);
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("is not a preset"), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find("send the layout's text"), std::string::npos) << r.status();
    EXPECT_EQ(r.status().message().find("root:"), std::string::npos) << r.status();
  }
  spec.layout.clear();
  spec.layout_text = "x split:0\n";
  auto t = ResolveRequestLayout(spec);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->text, "x split:0\n");
  EXPECT_EQ(t->source, "layout_text");
}

TEST(Layout, FirstFullMatchWinsAndRulesTakePrecedence) {
  auto l = Layout::Parse(R"(
# comment
.*\.linear_fc1\.weight   split:0
.*\.weight               split:1   # fallback
)");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->Match("a.linear_fc1.weight")->ToString(), "split:0");
  EXPECT_EQ(l->Match("a.linear_fc2.weight")->ToString(), "split:1");
  EXPECT_EQ(l->Match("a.linear_fc1.weight.extra"), nullptr);  // full match, not substring
  EXPECT_EQ(l->Describe("bias"), "replicate (default)");
  ASSERT_TRUE(l->Prepend(R"(a\..*)", *ParseRule("replicate")).ok());
  EXPECT_EQ(l->Match("a.linear_fc1.weight")->ToString(), "replicate");
}

TEST(Layout, ParseErrorsNameTheLine) {
  auto l = Layout::Parse("x split:0\ny\n", "my.layout");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("my.layout:2"), std::string::npos) << l.status();
  auto bad = Layout::Parse("(unclosed split:0\n");
  EXPECT_FALSE(bad.ok());
}

TEST(Layout, MegatronPresetRules) {
  auto l = Layout::Preset("megatron");
  ASSERT_TRUE(l.ok()) << l.status();
  auto rule = [&](const std::string& key) { return l->Describe(key); };
  const std::string v = "model.vision_model.";
  EXPECT_EQ(rule(v + "decoder.layers.3.self_attention.linear_qkv.weight"), "qkv");
  EXPECT_EQ(rule(v + "decoder.layers.3.self_attention.linear_qkv.layer_norm_weight"), "replicate");
  EXPECT_EQ(rule(v + "decoder.layers.3.self_attention.linear_proj.weight"), "split:1");
  EXPECT_EQ(rule(v + "decoder.layers.3.self_attention.linear_proj.bias"), "replicate");
  EXPECT_EQ(rule(v + "decoder.layers.3.mlp.linear_fc1.bias"), "split:0");
  EXPECT_EQ(rule(v + "decoder.layers.3.mlp.linear_fc2.weight"), "split:1");
  EXPECT_EQ(rule(v + "decoder.layers.3.mlp.linear_fc2.bias"), "replicate");
  EXPECT_EQ(rule(v + "decoder.layers.mlp.linear_fc2.weight"), "split:1@stacked");
  EXPECT_EQ(rule(v + "decoder.layers.self_attention.linear_qkv.weight"), "qkv@stacked");
  EXPECT_EQ(rule(v + "decoder.final_layernorm.weight"), "replicate");
  EXPECT_EQ(rule(v + "embedder.weight"), "split:0");
  EXPECT_EQ(rule(v + "class_token"), "replicate");
  EXPECT_EQ(rule(v + "position_embeddings"), "replicate");
  EXPECT_EQ(rule("embedding.word_embeddings.weight"), "vocab:0:128");
  EXPECT_EQ(rule("output_layer.weight"), "vocab:0:128");
  EXPECT_EQ(rule("decoder.layers.7.mixer.in_proj.weight.x"), "split:0");
  EXPECT_EQ(rule("decoder.layers.7.mixer.out_proj.weight"), "split:1");
  EXPECT_EQ(rule("decoder.layers.7.self_attention.linear_qkv._extra_state"), "opaque");
  EXPECT_EQ(rule("something.else"), "replicate (default)");
}

TEST(Layout, LoadPresetWithRulesAndUnknownNames) {
  auto l = Layout::Load("megatron", {R"(.*linear_fc1\.(weight|bias)=sections:0:2)"});
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->Describe("x.layers.0.mlp.linear_fc1.weight"), "sections:0:2");
  EXPECT_FALSE(Layout::Load("no-such-layout-or-file", {}).ok());
  EXPECT_FALSE(Layout::Load("megatron", {"missing-equals"}).ok());
  EXPECT_FALSE(Layout::Load("megatron", {"x=split"}).ok());
}


TEST(Layout, GluDefaultsOnlyInThePresetItself) {
  auto preset = Layout::Preset("megatron");
  ASSERT_TRUE(preset.ok()) << preset.status();
  for (const char* key : {"m.layers.3.mlp.linear_fc1.weight", "m.layers.mlp.linear_fc1.bias",
                          "m.mlp.shared_experts.linear_fc1.weight"}) {
    LayoutMatch m = preset->Find(key);
    ASSERT_NE(m.rule, nullptr) << key;
    EXPECT_TRUE(m.glu_fc1_default) << key;
  }
  EXPECT_FALSE(preset->Find("m.layers.3.mlp.linear_fc2.weight").glu_fc1_default);
  EXPECT_FALSE(preset->Find("vision_projection.encoder.linear_fc1.weight").glu_fc1_default);
  // A --rule in front, or any edit of the text, is explicit.
  auto ruled = Layout::Load("megatron", {R"(.*fc1\.weight=split:0)"});
  ASSERT_TRUE(ruled.ok());
  EXPECT_FALSE(ruled->Find("m.layers.3.mlp.linear_fc1.weight").glu_fc1_default);
  EXPECT_TRUE(ruled->Find("m.layers.3.mlp.linear_fc1.bias").glu_fc1_default);
  auto edited = Layout::Parse(*Layout::PresetText("megatron") + "\n# mine\n");
  ASSERT_TRUE(edited.ok());
  EXPECT_FALSE(edited->Find("m.layers.3.mlp.linear_fc1.weight").glu_fc1_default);
}

TEST(Layout, GluRulesSettleFc1BothWays) {
  for (bool gated : {true, false}) {
    auto l = Layout::Load("megatron", Layout::GluRules(gated));
    ASSERT_TRUE(l.ok()) << l.status();
    const std::string flat = gated ? "sections:0:2" : "split:0";
    EXPECT_EQ(l->Describe("m.layers.3.mlp.linear_fc1.weight"), flat);
    EXPECT_EQ(l->Describe("m.mlp.linear_fc1.bias"), flat);
    EXPECT_EQ(l->Describe("m.layers.mlp.linear_fc1.weight"), flat + "@stacked");
    EXPECT_FALSE(l->Find("m.layers.mlp.linear_fc1.weight").glu_fc1_default);
    EXPECT_EQ(l->Describe("m.layers.mlp.linear_fc2.weight"), "split:1@stacked");
  }
}

}  // namespace
}  // namespace shardcast
