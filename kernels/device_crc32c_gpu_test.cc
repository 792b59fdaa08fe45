// DeviceCrc32c against the host Crc32c: random sizes (0 to 3 MiB, piece boundaries and odd
// lengths), misaligned starts, many spans in one call; and its speed on a 512 MiB buffer.
#include "kernels/device_crc32c.h"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "common/crc32c.h"
#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(DeviceCrc32c, EqualsHostCrc) {
  std::mt19937_64 rng(11);
  const size_t total = 64ull << 20;
  std::string host(total, '\0');
  for (char& c : host) c = static_cast<char>(rng());
  char* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, total), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dev, host.data(), total, cudaMemcpyHostToDevice), cudaSuccess);
  std::vector<DeviceSpan> spans;
  std::vector<uint32_t> want;
  const uint64_t special[] = {0, 1, 7, 8, 9, 8191, 8192, 8193, 16384, 3 << 20};
  for (int i = 0; i < 400; ++i) {
    const uint64_t n = i < 10 ? special[i] : rng() % (3 << 20);
    const uint64_t off = rng() % (total - n);  // any alignment
    spans.push_back(DeviceSpan{dev + off, n});
    want.push_back(Crc32c(host.data() + off, n));
  }
  auto got = DeviceCrc32c(0, spans, std::chrono::seconds(30));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ((*got)[i], want[i]) << "span " << i << " of " << spans[i].nbytes;
  cudaFree(dev);
}

TEST(DeviceCrc32c, Speed) {
  const size_t n = 512ull << 20;
  char* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, n), cudaSuccess);
  ASSERT_EQ(cudaMemset(dev, 0x5A, n), cudaSuccess);
  std::vector<DeviceSpan> spans;
  for (size_t off = 0; off < n; off += 2ull << 20) spans.push_back(DeviceSpan{dev + off, 2ull << 20});
  ASSERT_TRUE(DeviceCrc32c(0, spans, std::chrono::seconds(30)).ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto got = DeviceCrc32c(0, spans, std::chrono::seconds(30));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(got.ok());
  std::printf("DeviceCrc32c: 512 MiB in 256 spans: %.2f ms (%.1f GB/s)\n", s * 1e3, n / s / 1e9);
  std::string host(2ull << 20, '\x5A');
  EXPECT_EQ((*got)[7], Crc32c(host.data(), host.size()));
  cudaFree(dev);
}

}  // namespace
}  // namespace shardcast
