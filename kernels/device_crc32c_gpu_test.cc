// DeviceCrc32c against the host Crc32c: random sizes (0 to 3 MiB, piece boundaries and odd
// lengths), misaligned starts, many spans in one call; calls one after another of growing and
// shrinking size and from several threads at once (the reused per-device context, and the checks
// of their own beside it); and its speed on a 512 MiB buffer, and on a receive's 300 spans.
#include "kernels/device_crc32c.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

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

TEST(DeviceCrc32c, RepeatedAndConcurrentChecksStayRight) {
  std::mt19937_64 rng(5);
  const size_t total = 16ull << 20;
  std::string host(total, '\0');
  for (char& c : host) c = static_cast<char>(rng());
  char* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, total), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dev, host.data(), total, cudaMemcpyHostToDevice), cudaSuccess);
  // Span sets of varied counts and sizes (the context's buffers grow, then are reused smaller).
  auto check = [&](uint64_t seed, int rounds, int* bad) {
    std::mt19937_64 r(seed);
    for (int k = 0; k < rounds; ++k) {
      const int count = 1 + static_cast<int>(r() % (k % 2 ? 5 : 700));
      std::vector<DeviceSpan> spans;
      std::vector<uint32_t> want;
      for (int i = 0; i < count; ++i) {
        const uint64_t n = r() % (k % 3 ? 4096 : (4 << 20));
        const uint64_t off = r() % (total - n);
        spans.push_back(DeviceSpan{dev + off, n});
        want.push_back(Crc32c(host.data() + off, n));
      }
      auto got = DeviceCrc32c(0, spans, std::chrono::seconds(30));
      if (!got.ok() || *got != want) ++*bad;
    }
  };
  int bad_alone = 0;
  check(1, 12, &bad_alone);
  EXPECT_EQ(bad_alone, 0);
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(check, 100 + t, 8, &bad[t]);
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
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
  // A receive's shape: 300 spans of 1 MiB, the median of 20 checks (set-up included).
  std::vector<DeviceSpan> receive;
  for (int i = 0; i < 300; ++i) receive.push_back(DeviceSpan{dev + (uint64_t{i} << 20), 1 << 20});
  std::vector<double> ms;
  for (int k = 0; k < 20; ++k) {
    const auto r0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(DeviceCrc32c(0, receive, std::chrono::seconds(30)).ok());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - r0).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("DeviceCrc32c: 300 x 1 MiB: median %.3f ms of 20\n", ms[10]);
  cudaFree(dev);
}

}  // namespace
}  // namespace shardcast
