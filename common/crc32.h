// CRC-32 (IEEE 802.3, the ZIP / gzip / PNG checksum) as torch.save records store it per entry:
// libdeflate's implementation (PCLMUL / AVX2 folding where the CPU has it), plus a GF(2) shift
// that joins the CRCs of blocks read in parallel into the CRC of the whole.
#ifndef SHARDCAST_COMMON_CRC32_H_
#define SHARDCAST_COMMON_CRC32_H_

#include <cstddef>
#include <cstdint>

namespace shardcast {

// Extends `crc` (0 to start) over n bytes: Crc32(b, Crc32(a)) == Crc32(a + b).
uint32_t Crc32(const void* data, size_t n, uint32_t crc = 0);

// What appending `len` bytes does to a CRC-32, as a linear map over GF(2):
//   Crc32Shift(b.size()).Combine(Crc32(a), Crc32(b)) == Crc32(a + b).
// Building one costs O(log len) 32x32 matrix products; Combine is at most 32 XORs.
class Crc32Shift {
 public:
  explicit Crc32Shift(uint64_t len);
  uint32_t Combine(uint32_t crc_a, uint32_t crc_b) const;

 private:
  uint32_t columns_[32];  // the image of each bit of crc_a
};

// Crc32Shift(len_b).Combine(crc_a, crc_b), for one-off joins.
uint32_t Crc32Combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_CRC32_H_
