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

}  // namespace
}  // namespace shardcast
