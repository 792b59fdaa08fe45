#include "common/json.h"

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

}  // namespace
}  // namespace shardcast
