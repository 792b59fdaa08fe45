// GPU test (needs a CUDA device; tag "gpu", not run by CI): the CUDA executor against the CPU
// reference executor on random shapes, chunk grids, rules, dtypes, casts and misaligned buffers.
// Destinations are poisoned before every run. Self-contained binary: copy it to a GPU host and
// run it (deploy/gpu/run_gpu_checks.sh does).
#include <cuda_runtime.h>

#include <cstring>
#include <random>

#include "common/status_testutil.h"
#include "gtest/gtest.h"
#include "reshard/cuda_executor.h"
#include "reshard/executor.h"
#include "reshard/planner.h"

namespace shardcast {
namespace {

std::vector<Box> RandomGrid(const Shape& shape, std::mt19937& rng) {
  std::vector<Box> out{Box{}};
  for (size_t d = 0; d < shape.size(); ++d) {
    std::vector<int64_t> cuts{0};
    for (int64_t x = 1; x < shape[d]; ++x) {
      if (rng() % 5 == 0) cuts.push_back(x);
    }
    cuts.push_back(shape[d]);
    std::vector<Box> next;
    for (const Box& b : out) {
      for (size_t k = 0; k + 1 < cuts.size(); ++k) {
        Box nb = b;
        nb.offsets.push_back(cuts[k]);
        nb.sizes.push_back(cuts[k + 1] - cuts[k]);
        next.push_back(nb);
      }
    }
    out = next;
  }
  return out;
}

TEST(CudaExecutor, MatchesCpuReferenceOnRandomCases) {
  ASSERT_GT(CudaDeviceCount(), 0) << "no CUDA device: run this test on a GPU host";
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShardExecutor> gpu, NewCudaExecutor(0));
  std::unique_ptr<ShardExecutor> cpu = NewCpuExecutor(1);
  std::mt19937 rng(2026);
  const DType dtypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16, DType::kInt8,
                          DType::kInt64,   DType::kFloat8E4M3FN, DType::kFloat64};
  int cases = 0, casts = 0;
  for (int iter = 0; iter < 300; ++iter) {
    const int tp = 1 + rng() % 4;
    const int r = rng() % tp;
    const size_t rank = 1 + rng() % 3;
    Shape shape(rank);
    for (auto& s : shape) s = 1 + rng() % (iter % 10 == 0 ? 700 : 40);
    Rule rule;
    const int kind = rng() % 4;
    const int d = rng() % rank;
    if (kind == 0) {
      rule.kind = Rule::Kind::kReplicate;
    } else if (kind == 1) {
      rule.kind = Rule::Kind::kSplit;
      rule.dim = d;
      shape[d] = tp * (1 + shape[d] % 37);
    } else if (kind == 2) {
      rule.kind = Rule::Kind::kSections;
      rule.dim = d;
      rule.num_sections = 2;
      shape[d] = 2 * tp * (1 + shape[d] % 19);
    } else {
      rule.kind = Rule::Kind::kVocab;
      rule.dim = d;
      rule.multiple = 1 + rng() % 8;
    }
    TensorEntry t;
    t.key = "t";
    t.dtype = dtypes[rng() % 7];
    t.shape = shape;
    for (Box& b : RandomGrid(shape, rng)) t.chunks.push_back(StoredChunk{b, {}});
    CheckpointMetadata md;
    md.tensors.push_back(t);
    md.tensor_index["t"] = 0;
    Layout layout;
    ASSERT_TRUE(layout.Prepend("t", rule).ok());
    SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, layout, {{tp, r}}, {}));
    const ShardPlan& sp = plans[0].shards[0];
    DType out = t.dtype;
    const bool is_float = t.dtype == DType::kFloat32 || t.dtype == DType::kBFloat16 || t.dtype == DType::kFloat16;
    if (is_float && rng() % 2) {
      const DType fl[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};
      out = fl[rng() % 3];
    }
    casts += out != t.dtype;
    // Host sources with random bytes; device copies at a random (mis)alignment.
    const size_t item = ItemSize(t.dtype);
    std::vector<std::vector<char>> host(t.chunks.size());
    std::vector<SourceBuffer> hsrc, dsrc;
    std::vector<char*> dev_alloc;
    for (size_t c = 0; c < t.chunks.size(); ++c) {
      const size_t n = static_cast<size_t>(*NumElements(t.chunks[c].box.sizes)) * item;
      host[c].resize(n);
      for (char& b : host[c]) b = static_cast<char>(rng());
      hsrc.push_back(SourceBuffer{host[c].data(), t.chunks[c].box});
      const size_t shift = (rng() % 4 == 0) ? item * (rng() % 3) : 0;  // element-aligned offsets
      char* dptr = nullptr;
      ASSERT_EQ(cudaMalloc(&dptr, n + shift + 16), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(dptr + shift, host[c].data(), n, cudaMemcpyHostToDevice), cudaSuccess);
      dev_alloc.push_back(dptr);
      dsrc.push_back(SourceBuffer{dptr + shift, t.chunks[c].box});
    }
    const size_t out_bytes = sp.num_elements() * ItemSize(out);
    std::vector<char> want(out_bytes, '\x5a'), got(out_bytes, 0);
    SC_ASSERT_OK(cpu->Run({ShardJob{&sp, &hsrc, want.data(), out}}));
    char* ddst = nullptr;
    ASSERT_EQ(cudaMalloc(&ddst, out_bytes + 16), cudaSuccess);
    ASSERT_EQ(cudaMemset(ddst, 0xAB, out_bytes + 16), cudaSuccess);  // poison
    SC_ASSERT_OK(gpu->Run({ShardJob{&sp, &dsrc, ddst, out}}));
    ASSERT_EQ(cudaMemcpy(got.data(), ddst, out_bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(got, want) << "iteration " << iter << " rule " << rule.ToString() << " shape " << ShapeToString(shape)
                         << " tp " << tp << " rank " << r << " " << DTypeName(t.dtype) << " -> " << DTypeName(out);
    cudaFree(ddst);
    for (char* p : dev_alloc) cudaFree(p);
    ++cases;
  }
  std::printf("checked %d random cases (%d with casts) on the GPU against the CPU reference\n", cases, casts);
  EXPECT_EQ(cases, 300);
  EXPECT_GT(casts, 10);
}

TEST(CudaExecutor, CastsMatchPyTorchRoundingOnEveryBf16AndFp16Boundary) {
  ASSERT_GT(CudaDeviceCount(), 0) << "no CUDA device: run this test on a GPU host";
  SC_ASSERT_OK_AND_ASSIGN(std::unique_ptr<ShardExecutor> gpu, NewCudaExecutor(0));
  std::unique_ptr<ShardExecutor> cpu = NewCpuExecutor(4);
  // 2^24 float32 bit patterns spread over the whole range (every 256th pattern), incl. NaN/inf.
  const int64_t n = 1 << 24;
  std::vector<uint32_t> bits(n);
  for (int64_t i = 0; i < n; ++i) bits[i] = static_cast<uint32_t>(i) * 256u + static_cast<uint32_t>(i & 255);
  TensorEntry t;
  t.key = "f";
  t.dtype = DType::kFloat32;
  t.shape = {n};
  t.chunks.push_back(StoredChunk{Box{{0}, {n}}, {}});
  CheckpointMetadata md;
  md.tensors.push_back(t);
  md.tensor_index["f"] = 0;
  SC_ASSERT_OK_AND_ASSIGN(auto plans, PlanReshard(md, Layout(), {{1, 0}}, {}));
  char* dsrc = nullptr;
  ASSERT_EQ(cudaMalloc(&dsrc, n * 4), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dsrc, bits.data(), n * 4, cudaMemcpyHostToDevice), cudaSuccess);
  std::vector<SourceBuffer> hs{SourceBuffer{bits.data(), t.chunks[0].box}}, ds{SourceBuffer{dsrc, t.chunks[0].box}};
  for (DType out : {DType::kBFloat16, DType::kFloat16}) {
    std::vector<uint16_t> want(n), got(n);
    SC_ASSERT_OK(cpu->Run({ShardJob{&plans[0].shards[0], &hs, want.data(), out}}));
    uint16_t* dd = nullptr;
    ASSERT_EQ(cudaMalloc(&dd, n * 2), cudaSuccess);
    SC_ASSERT_OK(gpu->Run({ShardJob{&plans[0].shards[0], &ds, dd, out}}));
    ASSERT_EQ(cudaMemcpy(got.data(), dd, n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_TRUE(got == want) << DTypeName(out);
    cudaFree(dd);
  }
  cudaFree(dsrc);
}

}  // namespace
}  // namespace shardcast
