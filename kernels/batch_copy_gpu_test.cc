// LaunchBatchCopy against memcpy on the host: 500 segments (several launches) of random sizes
// (0 to 1 MiB, block boundaries and odd lengths), aligned and misaligned sources and destinations;
// bytes outside the destinations stay untouched. And its speed against one cudaMemcpyAsync per
// segment, on 300 segments of 1 MiB.
#include "kernels/batch_copy.h"

#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace shardcast {
namespace {

TEST(BatchCopy, EqualsHostCopies) {
  std::mt19937_64 rng(5);
  const size_t total = 256ull << 20;
  std::string src_host(total, '\0'), dst_host(total, '\0');
  for (char& c : src_host) c = static_cast<char>(rng());
  for (char& c : dst_host) c = static_cast<char>(rng());
  char *src = nullptr, *dst = nullptr;
  ASSERT_EQ(cudaMalloc(&src, total), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dst, total), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(src, src_host.data(), total, cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dst, dst_host.data(), total, cudaMemcpyHostToDevice), cudaSuccess);
  std::vector<CopySegment> segments;
  std::string want = dst_host;
  const uint64_t special[] = {0, 1, 15, 16, 17, 65535, 65536, 65537, 1 << 20};
  uint64_t next_dst = 0;  // destinations laid out one after another (with gaps): no overlaps
  for (int i = 0; i < 500; ++i) {
    const uint64_t n = i < 9 ? special[i] : rng() % (1 << 20);
    const bool aligned = i % 3 != 0;
    uint64_t s = rng() % (total - n - 16);
    if (aligned) s &= ~uint64_t{15};
    next_dst += rng() % 64;
    if (aligned) next_dst = (next_dst + 15) & ~uint64_t{15};
    ASSERT_LT(next_dst + n, total);
    segments.push_back(CopySegment{src + s, dst + next_dst, n});
    want.replace(next_dst, n, src_host, s, n);
    next_dst += n;
  }
  ASSERT_TRUE(LaunchBatchCopy(segments.data(), segments.size(), nullptr).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::string got(total, '\0');
  ASSERT_EQ(cudaMemcpy(got.data(), dst, total, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_TRUE(got == want) << "the destination differs from the host's copies";
  cudaFree(src);
  cudaFree(dst);
}

TEST(BatchCopy, SpeedAgainstOneMemcpyPerSegment) {
  const int n = 300;
  const size_t each = 1 << 20;
  char *src = nullptr, *dst = nullptr;
  ASSERT_EQ(cudaMalloc(&src, n * each), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dst, n * each), cudaSuccess);
  std::vector<CopySegment> segments;
  for (int i = 0; i < n; ++i) segments.push_back(CopySegment{src + i * each, dst + i * each, each});
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  auto time = [&](auto&& enqueue) {
    double best_total = 1e9, best_enqueue = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      enqueue();
      const auto t1 = std::chrono::steady_clock::now();
      cudaStreamSynchronize(stream);
      const auto t2 = std::chrono::steady_clock::now();
      best_enqueue = std::min(best_enqueue, std::chrono::duration<double, std::milli>(t1 - t0).count());
      best_total = std::min(best_total, std::chrono::duration<double, std::milli>(t2 - t0).count());
    }
    return std::make_pair(best_enqueue, best_total);
  };
  const auto batched = time([&] { ASSERT_TRUE(LaunchBatchCopy(segments.data(), segments.size(), stream).ok()); });
  const auto each_call = time([&] {
    for (const CopySegment& s : segments) cudaMemcpyAsync(s.dst, s.src, s.nbytes, cudaMemcpyDeviceToDevice, stream);
  });
  std::printf("300 x 1 MiB: batched enqueue %.3f ms, total %.3f ms; one cudaMemcpyAsync each: enqueue %.3f ms, total "
              "%.3f ms\n", batched.first, batched.second, each_call.first, each_call.second);
  EXPECT_LT(batched.first, each_call.first);
  cudaStreamDestroy(stream);
  cudaFree(src);
  cudaFree(dst);
}

}  // namespace
}  // namespace shardcast
