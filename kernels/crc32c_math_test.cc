// The GPU CRC32C's arithmetic on the CPU: spans cut into end-aligned pieces (PieceRange), each
// piece's raw CRC (RawExtend), joined by Horner's rule (ShiftPiece) and finished (FinishSpan), as
// kernels/crc32c_kernel.cu does, equal common/crc32c's Crc32c for every length and alignment.
#include "kernels/crc32c_math.h"

#include <random>
#include <string>

#include "common/crc32c.h"
#include "gtest/gtest.h"
#include "kernels/crc32c_tables.h"

namespace shardcast {
namespace {

using namespace crc32c_math;  // NOLINT: the names under test

// What the two kernels compute for one span.
uint32_t EmulatedSpanCrc(const uint8_t* data, uint64_t n) {
  const Tables& t = DeviceCrc32cTables();
  uint32_t r = 0;
  for (uint64_t k = 0; k < PieceCount(n); ++k) {
    uint64_t start = 0, len = 0;
    PieceRange(n, k, &start, &len);
    r = ShiftPiece(t.shift_piece, r) ^ RawExtend(t.slice8, 0, data + start, len);
  }
  return FinishSpan(t, r, n);
}

TEST(Crc32cMath, PiecesAreEndAlignedAndCoverTheSpan) {
  for (uint64_t n : {uint64_t{1}, kPieceBytes - 1, kPieceBytes, kPieceBytes + 1, 5 * kPieceBytes + 17}) {
    uint64_t covered = 0, start = 0, len = 0;
    for (uint64_t k = 0; k < PieceCount(n); ++k) {
      PieceRange(n, k, &start, &len);
      EXPECT_EQ(start, covered) << n;
      EXPECT_GE(len, 1u);
      EXPECT_LE(len, kPieceBytes);
      if (k > 0) {
        EXPECT_EQ(len, kPieceBytes);
      }
      covered += len;
    }
    EXPECT_EQ(covered, n);
  }
  EXPECT_EQ(PieceCount(0), 0u);
}

TEST(Crc32cMath, EmulatedKernelsEqualHostCrc) {
  std::mt19937_64 rng(5);
  std::string buf(3 * kPieceBytes * 8 + 64, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  const auto* base = reinterpret_cast<const uint8_t*>(buf.data());
  const uint64_t special[] = {0, 1, 7, 8, 9, kPieceBytes - 1, kPieceBytes, kPieceBytes + 1, 2 * kPieceBytes,
                              3 * kPieceBytes + 5};
  for (int i = 0; i < 300; ++i) {
    const uint64_t n = i < 10 ? special[i] : rng() % (3 * kPieceBytes * 8);
    const uint64_t off = rng() % 64;  // every alignment
    EXPECT_EQ(EmulatedSpanCrc(base + off, n), Crc32c(base + off, n)) << "n " << n << " off " << off;
  }
}

TEST(Crc32cMath, FinishSpanOfAllZerosIsTheCrcOfZeros) {
  const Tables& t = DeviceCrc32cTables();
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, uint64_t{4096}, uint64_t{1} << 20}) {
    const std::string zeros(n, '\0');
    EXPECT_EQ(FinishSpan(t, 0, n), Crc32c(zeros.data(), n)) << n;
  }
}

}  // namespace
}  // namespace shardcast
