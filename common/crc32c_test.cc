#include "common/crc32c.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 and the classic check value.
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc32c("", 0), 0u);
}

TEST(Crc32c, HardwareEqualsPortableAndExtends) {
  std::mt19937 rng(3);
  for (int i = 0; i < 200; ++i) {
    std::string s(rng() % 5000, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    EXPECT_EQ(Crc32c(s.data(), s.size()), Crc32cPortable(s.data(), s.size()));
    const size_t cut = s.empty() ? 0 : rng() % s.size();
    EXPECT_EQ(Crc32c(s.data() + cut, s.size() - cut, Crc32c(s.data(), cut)), Crc32c(s.data(), s.size()));
  }
}

TEST(Crc32c, CombineJoinsPieces) {
  std::mt19937 rng(5);
  for (int i = 0; i < 200; ++i) {
    std::string s(rng() % 20000, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    const size_t cut = s.empty() ? 0 : rng() % (s.size() + 1);
    const uint32_t a = Crc32c(s.data(), cut), b = Crc32c(s.data() + cut, s.size() - cut);
    EXPECT_EQ(Crc32cCombine(a, b, s.size() - cut), Crc32c(s.data(), s.size())) << s.size() << " cut " << cut;
  }
}

TEST(Crc32c, ShiftJoinsManyEqualPiecesAsTheGpuDoes) {
  // Equal pieces (one operator reused) and a shorter last piece, as kernels/device_crc32c joins them.
  std::mt19937 rng(9);
  std::string s(100000 + 123, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  const size_t piece = 8192;
  const Crc32cShift shift(piece);
  uint32_t crc = Crc32c(s.data(), piece);
  size_t off = piece;
  for (; off + piece <= s.size(); off += piece) crc = shift.Combine(crc, Crc32c(s.data() + off, piece));
  crc = Crc32cCombine(crc, Crc32c(s.data() + off, s.size() - off), s.size() - off);
  EXPECT_EQ(crc, Crc32c(s.data(), s.size()));
  EXPECT_EQ(Crc32cCombine(0x12345678u, 0u, 0), 0x12345678u);  // joining an empty piece changes nothing
}

TEST(Crc32c, TablesAreThePortableOnes) {
  const uint32_t* t = Crc32cTables();
  EXPECT_EQ(t[1], 0xF26B8303u);    // table 0, entry 1 of the reflected Castagnoli polynomial
  EXPECT_EQ(t[128], 0x82F63B78u);  // entry 128 is the polynomial itself
}

}  // namespace
}  // namespace shardcast
