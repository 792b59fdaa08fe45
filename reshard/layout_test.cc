#include "reshard/layout.h"

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

}  // namespace
}  // namespace shardcast
