// kernel_bench (GPU): the strided-copy kernels against a device-to-device cudaMemcpy of the same
// bytes, on row-parallel (dim-1) TP slices of RADIO-H-sized bf16 tensors, plus dim-0 slices and
// a cast for reference. Timed with CUDA events over repeated launches on one stream.
//
//   kernel_bench [--iters N] [--json]
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/json.h"
#include "kernels/strided_copy.h"
#include "reshard/executor.h"
#include "reshard/planner.h"

namespace shardcast {
namespace {

#define CHECK_CUDA(x)                                                                   \
  do {                                                                                  \
    cudaError_t e_ = (x);                                                               \
    if (e_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));                     \
      std::exit(1);                                                                     \
    }                                                                                   \
  } while (0)

struct Case {
  std::string name;
  Shape shape;
  std::string rule;
  int tp;
  DType out;
};

int Main(int argc, char** argv) {
  int iters = 50;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--iters") && i + 1 < argc) iters = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--json")) json = true;
  }
  int dev_count = 0;
  if (cudaGetDeviceCount(&dev_count) != cudaSuccess || dev_count == 0) {
    std::fprintf(stderr, "kernel_bench: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  const std::vector<Case> cases = {
      {"qkv [3840,1280] dim-1 TP2", {3840, 1280}, "split:1", 2, DType::kBFloat16},
      {"qkv [3840,1280] dim-1 TP4", {3840, 1280}, "split:1", 4, DType::kBFloat16},
      {"fc2 [1280,5120] dim-1 TP2", {1280, 5120}, "split:1", 2, DType::kBFloat16},
      {"fc2 [1280,5120] dim-1 TP4", {1280, 5120}, "split:1", 4, DType::kBFloat16},
      {"stacked qkv [32,3840,1280] dim-1 TP2", {32, 3840, 1280}, "split:1@stacked", 2, DType::kBFloat16},
      {"stacked qkv [32,3840,1280] dim-1 TP4", {32, 3840, 1280}, "split:1@stacked", 4, DType::kBFloat16},
      {"stacked qkv [32,3840,1280] dim-0 TP4", {32, 3840, 1280}, "split:0@stacked", 4, DType::kBFloat16},
      {"stacked qkv [32,3840,1280] dim-1 TP4 bf16->fp32", {32, 3840, 1280}, "split:1@stacked", 4, DType::kFloat32},
  };
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  cudaEvent_t a, b;
  CHECK_CUDA(cudaEventCreate(&a));
  CHECK_CUDA(cudaEventCreate(&b));
  Json out = Json::Object();
  out.Set("device", prop.name);
  Json rows = Json::Array();
  if (!json) {
    std::printf("device: %s\n%-50s %10s %12s %12s %8s\n", prop.name, "case", "MB out", "kernel GB/s", "memcpy GB/s",
                "ratio");
  }
  for (const Case& c : cases) {
    TensorEntry t;
    t.key = "t";
    t.dtype = DType::kBFloat16;
    t.shape = c.shape;
    t.chunks.push_back(StoredChunk{FullBox(c.shape), {}});
    CheckpointMetadata md;
    md.tensors.push_back(t);
    md.tensor_index["t"] = 0;
    Layout layout;
    layout.Prepend("t", *ParseRule(c.rule)).IgnoreError();
    auto plans = PlanReshard(md, layout, {{c.tp, c.tp - 1}}, {});
    if (!plans.ok()) {
      std::fprintf(stderr, "%s\n", plans.status().ToString().c_str());
      return 1;
    }
    const ShardPlan& sp = (*plans)[0].shards[0];
    const size_t in_bytes = t.nbytes();
    const size_t out_bytes = sp.num_elements() * ItemSize(c.out);
    char *src, *dst, *dst2;
    CHECK_CUDA(cudaMalloc(&src, in_bytes));
    CHECK_CUDA(cudaMalloc(&dst, out_bytes));
    CHECK_CUDA(cudaMalloc(&dst2, out_bytes));
    CHECK_CUDA(cudaMemset(src, 1, in_bytes));
    std::vector<SourceBuffer> sources{SourceBuffer{src, t.chunks[0].box}};
    auto descs = BuildCopyDescs(ShardJob{&sp, &sources, dst, c.out});
    if (!descs.ok()) {
      std::fprintf(stderr, "%s\n", descs.status().ToString().c_str());
      return 1;
    }
    // Warm up both.
    LaunchCopyDescs(descs->data(), descs->size(), stream).IgnoreError();
    CHECK_CUDA(cudaMemcpyAsync(dst2, src, out_bytes, cudaMemcpyDeviceToDevice, stream));
    CHECK_CUDA(cudaStreamSynchronize(stream));
    float kernel_ms = 0, copy_ms = 0;
    CHECK_CUDA(cudaEventRecord(a, stream));
    for (int i = 0; i < iters; ++i) LaunchCopyDescs(descs->data(), descs->size(), stream).IgnoreError();
    CHECK_CUDA(cudaEventRecord(b, stream));
    CHECK_CUDA(cudaEventSynchronize(b));
    CHECK_CUDA(cudaEventElapsedTime(&kernel_ms, a, b));
    CHECK_CUDA(cudaEventRecord(a, stream));
    for (int i = 0; i < iters; ++i) {
      CHECK_CUDA(cudaMemcpyAsync(dst2, src, out_bytes, cudaMemcpyDeviceToDevice, stream));
    }
    CHECK_CUDA(cudaEventRecord(b, stream));
    CHECK_CUDA(cudaEventSynchronize(b));
    CHECK_CUDA(cudaEventElapsedTime(&copy_ms, a, b));
    CHECK_CUDA(cudaGetLastError());
    // Bandwidth as bytes moved (read + written) per second; the memcpy moves the shard's bytes.
    const double read_bytes = static_cast<double>(sp.num_elements() * ItemSize(t.dtype));
    const double kernel_gbps = (read_bytes + out_bytes) * iters / (kernel_ms * 1e-3) / 1e9;
    const double copy_gbps = 2.0 * out_bytes * iters / (copy_ms * 1e-3) / 1e9;
    Json r = Json::Object();
    r.Set("case", c.name);
    r.Set("out_bytes", static_cast<uint64_t>(out_bytes));
    r.Set("kernel_us", kernel_ms * 1e3 / iters);
    r.Set("memcpy_us", copy_ms * 1e3 / iters);
    r.Set("kernel_gbps", kernel_gbps);
    r.Set("memcpy_gbps", copy_gbps);
    r.Set("ratio", kernel_gbps / copy_gbps);
    if (!json) {
      std::printf("%-50s %10.1f %12.0f %12.0f %7.2fx\n", c.name.c_str(), out_bytes / 1e6, kernel_gbps, copy_gbps,
                  kernel_gbps / copy_gbps);
    }
    rows.Append(std::move(r));
    cudaFree(src);
    cudaFree(dst);
    cudaFree(dst2);
  }
  out.Set("cases", std::move(rows));
  if (json) std::printf("%s\n", out.Dump(1).c_str());
  return 0;
}

}  // namespace
}  // namespace shardcast

int main(int argc, char** argv) { return shardcast::Main(argc, argv); }
