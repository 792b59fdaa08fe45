#include "common/json.h"

#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/text_escape.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(Json, ParseAndDumpRoundTrip) {
  auto j = Json::Parse(R"({"a": [1, 2.5, "x\n\"y\""], "b": {"c": null, "d": true}, "e": -7})");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->Find("a")->items()[0].as_int(), 1);
  EXPECT_DOUBLE_EQ(j->Find("a")->items()[1].as_double(), 2.5);
  EXPECT_EQ(j->Find("a")->items()[2].as_string(), "x\n\"y\"");
  EXPECT_TRUE(j->Find("b")->Find("c")->is_null());
  EXPECT_TRUE(j->Find("b")->Find("d")->as_bool());
  EXPECT_EQ(j->Find("e")->as_int(), -7);
  auto again = Json::Parse(j->Dump());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->Dump(), j->Dump());
  EXPECT_EQ(Json::Parse(j->Dump(2))->Dump(), j->Dump());
}

TEST(Json, RejectsMalformed) {
  EXPECT_FALSE(Json::Parse("{\"a\": }").ok());
  EXPECT_FALSE(Json::Parse("[1, 2").ok());
  EXPECT_FALSE(Json::Parse("\"abc").ok());
  EXPECT_FALSE(Json::Parse("{} x").ok());
}

TEST(Json, EscapesControlCharacters) {
  Json j(std::string("a\x01" "b"));
  EXPECT_EQ(j.Dump(), "\"a\\u0001b\"");
}

TEST(Json, NonUtf8StringsStillDumpAsValidJson) {
  // A stray byte becomes U+FFFD; valid multi-byte text passes through.
  Json j = Json::Object();
  j.Set(std::string("k\xff\xfe"), std::string("caf\xc3\xa9 \xe2\x82"));
  const std::string out = j.Dump();
  EXPECT_EQ(out, "{\"k\\ufffd\\ufffd\":\"caf\xc3\xa9 \\ufffd\\ufffd\"}");
  auto back = Json::Parse(out);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->members()[0].first, "k\xef\xbf\xbd\xef\xbf\xbd");
}

TEST(Json, PickleSurrogatesDumpAsSurrogateEscapes) {
  // Python's pickle writes the lone surrogate U+D800 as ED A0 80; json.dumps writes \ud800.
  EXPECT_EQ(Json(std::string("a\xed\xa0\x80")).Dump(), "\"a\\ud800\"");
}

TEST(Json, ControlCharactersAndSeparatorsAreEscaped) {
  EXPECT_EQ(Json(std::string("a\nb\x7f\xe2\x80\xa8")).Dump(), "\"a\\nb\\u007f\\u2028\"");
}

TEST(Json, Uint64AboveInt64MaxIsKept) {
  const uint64_t big = 18446744073709551615ull;
  Json j(big);
  EXPECT_EQ(j.Dump(), "18446744073709551615");
  EXPECT_EQ(j.as_uint(), big);
  EXPECT_EQ(j.as_int(), INT64_MAX);  // saturates, never wraps negative
  auto p = Json::Parse("[18446744073709551615, 9223372036854775807, -9223372036854775808]");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->items()[0].as_uint(), big);
  EXPECT_EQ(p->items()[0].type(), Json::Type::kUint);
  EXPECT_EQ(p->items()[1].as_int(), INT64_MAX);
  EXPECT_EQ(p->items()[2].as_int(), INT64_MIN);
  EXPECT_EQ(Json(int64_t{-1}).as_uint(), 0u);
}

TEST(Json, RefusesIntegersPast64Bits) {
  auto p = Json::Parse("18446744073709551616");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("does not fit 64 bits"), std::string::npos) << p.status();
  EXPECT_FALSE(Json::Parse("-9223372036854775809").ok());
  EXPECT_FALSE(Json::Parse("1e999").ok());
}

TEST(Json, IntegralDoublesStayDoubles) {
  EXPECT_EQ(Json(5.0).Dump(), "5.0");
  EXPECT_EQ(Json(-0.0).Dump(), "-0.0");
  EXPECT_EQ(Json::Parse(Json(5.0).Dump())->type(), Json::Type::kDouble);
  EXPECT_EQ(Json(0.1).Dump(), "0.10000000000000001");
}

TEST(Json, DoublesOutOfIntRangeConvertWithoutUb) {
  EXPECT_EQ(Json(1e300).as_int(), INT64_MAX);
  EXPECT_EQ(Json(-1e300).as_int(), INT64_MIN);
  EXPECT_EQ(Json(std::nan("")).as_int(), 0);
}

TEST(Json, CombinesSurrogatePairsOnParse) {
  auto p = Json::Parse("\"\\ud83d\\ude00|\\ud800|\\udc00x\"");
  ASSERT_TRUE(p.ok()) << p.status();
  // U+1F600 as four UTF-8 bytes; lone surrogates as U+FFFD.
  EXPECT_EQ(p->as_string(), "\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbdx");
  EXPECT_EQ(Json(p->as_string()).Dump(), "\"\xf0\x9f\x98\x80|\xef\xbf\xbd|\xef\xbf\xbdx\"");
}

TEST(Json, StrictGrammar) {
  for (const char* bad : {"\"\\u12g4\"", "\"\\u12\"", "\"a\nb\"", "\"\xff\"", "-", "+1", "01", "1.", ".5", "1e", "--1",
                          "1-2", "[1,]", "{\"a\":1,}", "nul", "\"\xed\xa0\x80\""}) {
    EXPECT_FALSE(Json::Parse(bad).ok()) << bad;
  }
  for (const char* good : {"0", "-0", "1.5e-3", "1E+2", "[]", "{}", "\"\\/\"", " [ 1 , 2 ] "}) {
    EXPECT_TRUE(Json::Parse(good).ok()) << good;
  }
}

TEST(Json, DuplicateKeysLastWinsInLinearTime) {
  std::string text = "{";
  for (int i = 0; i < 200000; ++i) absl::StrAppend(&text, i ? "," : "", "\"k", i % 1000, "\":", i);
  text += "}";
  auto p = Json::Parse(text);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->size(), 1000u);
  EXPECT_EQ(p->Find("k999")->as_int(), 199999);
}

TEST(Json, NestingLimitRefusesHostileDepthWithoutRecursion) {
  // 200 levels parse; one more is refused at the offending bracket. 100k levels (a stack
  // overflow for a recursive parser, builder or destructor) are refused the same way.
  const std::string ok = std::string(200, '[') + std::string(200, ']');
  EXPECT_TRUE(Json::Parse(ok).ok());
  auto p = Json::Parse(std::string(201, '[') + std::string(201, ']'));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "JSON: nesting too deep at offset 200");
  for (const std::string& open : {std::string("["), std::string("{\"a\":")}) {
    std::string hostile;
    for (int i = 0; i < 100000; ++i) hostile += open;
    auto h = Json::Parse(hostile);
    ASSERT_FALSE(h.ok());
    EXPECT_NE(h.status().message().find("nesting too deep"), std::string::npos) << h.status();
  }
}

TEST(Json, ErrorsNameAnOffset) {
  auto p = Json::Parse("[1, 2, x]");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("at offset 7"), std::string::npos) << p.status();
  auto big = Json::Parse("[1, 18446744073709551616]");
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("integer 18446744073709551616 does not fit 64 bits at offset"),
            std::string::npos)
      << big.status();
  // Input bytes quoted in an error are escaped (no raw control or invalid bytes in messages).
  auto raw = Json::Parse("\"\x01\xff\"");
  ASSERT_FALSE(raw.ok());
  EXPECT_TRUE(IsValidUtf8(raw.status().message()));
  EXPECT_EQ(raw.status().message().find('\x01'), std::string::npos) << raw.status();
}

TEST(Json, RefusesByteOrderMarkAndEmptyInput) {
  EXPECT_FALSE(Json::Parse("\xEF\xBB\xBF{}").ok());
  EXPECT_FALSE(Json::Parse("").ok());
  EXPECT_FALSE(Json::Parse("  ").ok());
  // nlohmann stops at a NUL byte; we refuse it wherever it is (found by json_fuzzer).
  for (const std::string& nul : {std::string("18\0garbage", 10), std::string("[1]\0", 4), std::string("\"a\0\"", 4)}) {
    auto p = Json::Parse(nul);
    ASSERT_FALSE(p.ok()) << nul.size();
    EXPECT_NE(p.status().message().find("NUL byte at offset"), std::string::npos) << p.status();
  }
}

TEST(Json, SurrogateEscapesNextToOtherEscapes) {
  // An escaped backslash followed by "ud800" is text, not an escape; a high surrogate followed
  // by a non-low escape stands alone; a reversed pair is two lone surrogates.
  auto p = Json::Parse(R"(["\\ud800", "\ud800\u0041", "\udc00\ud800", "\uD83D\uDE00"])");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->items()[0].as_string(), "\\ud800");
  EXPECT_EQ(p->items()[1].as_string(), "\xef\xbf\xbd" "A");
  EXPECT_EQ(p->items()[2].as_string(), "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(p->items()[3].as_string(), "\xf0\x9f\x98\x80");
}

TEST(Json, IntegerTypesFromParse) {
  auto p = Json::Parse("[0, -0, 9223372036854775808, -1, 1.0]");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->items()[0].type(), Json::Type::kInt);
  EXPECT_EQ(p->items()[1].type(), Json::Type::kInt);
  EXPECT_EQ(p->items()[2].type(), Json::Type::kUint);
  EXPECT_EQ(p->items()[2].as_uint(), 9223372036854775808ull);
  EXPECT_EQ(p->items()[3].as_int(), -1);
  EXPECT_EQ(p->items()[4].type(), Json::Type::kDouble);
  EXPECT_EQ(p->Dump(), "[0,0,9223372036854775808,-1,1.0]");
}

}  // namespace
}  // namespace shardcast
