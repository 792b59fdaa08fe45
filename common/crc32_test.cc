#include "common/crc32.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(Crc32, KnownValues) {
  EXPECT_EQ(Crc32("", 0), 0u);
  EXPECT_EQ(Crc32("123456789", 9), 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  EXPECT_EQ(Crc32("The quick brown fox jumps over the lazy dog", 43), 0x414FA339u);
}

TEST(Crc32, IncrementalAndCombinedAgreeWithWhole) {
  std::mt19937_64 rng(7);
  std::string data(1 << 20, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  const uint32_t whole = Crc32(data.data(), data.size());
  for (size_t cut : {size_t{0}, size_t{1}, size_t{4095}, size_t{65536}, data.size() - 3, data.size()}) {
    const uint32_t a = Crc32(data.data(), cut);
    const uint32_t b = Crc32(data.data() + cut, data.size() - cut);
    EXPECT_EQ(Crc32(data.data() + cut, data.size() - cut, a), whole) << cut;
    EXPECT_EQ(Crc32Combine(a, b, data.size() - cut), whole) << cut;
  }
  // Blocks of one size through one shift, as the reader joins parallel reads.
  const size_t block = 1000;
  const Crc32Shift shift(block);
  uint32_t acc = Crc32(data.data(), block);
  size_t off = block;
  for (; off + block <= data.size(); off += block) acc = shift.Combine(acc, Crc32(data.data() + off, block));
  acc = Crc32Combine(acc, Crc32(data.data() + off, data.size() - off), data.size() - off);
  EXPECT_EQ(acc, whole);
}

}  // namespace
}  // namespace shardcast
