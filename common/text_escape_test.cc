#include "common/text_escape.h"

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(EscapeForTerminal, PrintableUtf8IsUnchanged) {
  EXPECT_EQ(EscapeForTerminal("model.layers.0.weight"), "model.layers.0.weight");
  EXPECT_EQ(EscapeForTerminal("caf\xc3\xa9 \xe6\x97\xa5"), "caf\xc3\xa9 \xe6\x97\xa5");
}

TEST(EscapeForTerminal, NewlinesAndControlsCannotForgeLines) {
  const std::string forged = EscapeForTerminal("w\nfake.key  float32  [1]\r\x1b[2J\t\\");
  EXPECT_EQ(forged, "w\\nfake.key  float32  [1]\\r\\x1b[2J\\t\\\\");
  EXPECT_EQ(forged.find('\n'), std::string::npos);
  EXPECT_EQ(forged.find('\x1b'), std::string::npos);
}

TEST(EscapeForTerminal, InvalidBytesC1AndBidiAreEscaped) {
  EXPECT_EQ(EscapeForTerminal("a\xff" "b"), "a\\xffb");
  EXPECT_EQ(EscapeForTerminal("\xc2\x85"), "\\x85");                 // NEL (C1)
  EXPECT_EQ(EscapeForTerminal("x\xe2\x80\xaey"), "x\\u{202e}y");     // right-to-left override
  EXPECT_EQ(EscapeForTerminal("\xed\xa0\x80"), "\\xed\\xa0\\x80");   // surrogate
  EXPECT_EQ(EscapeForTerminal("\xe2\x82"), "\\xe2\\x82");            // truncated sequence
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(IsValidUtf8("plain \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xed\xb0\x80"));      // surrogate
  std::string s;
  AppendUtf8(&s, 0x1F600);
  EXPECT_EQ(s, "\xf0\x9f\x98\x80");
}

}  // namespace
}  // namespace shardcast
