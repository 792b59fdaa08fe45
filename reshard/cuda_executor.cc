#include "reshard/cuda_executor.h"

#include <cuda_runtime.h>

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kernels/cuda_device.h"
#include "kernels/cuda_status.h"
#include "kernels/strided_copy.h"

namespace shardcast {
namespace {


class CudaExecutor : public ShardExecutor {
 public:
  explicit CudaExecutor(int device) : device_(device) {}
  ~CudaExecutor() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  absl::Status Init() {
    SC_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    SC_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    return absl::OkStatus();
  }
  absl::Status Run(const std::vector<ShardJob>& jobs) override {
    SC_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    std::vector<CopyDesc> descs;
    for (const ShardJob& j : jobs) {
      SC_ASSIGN_OR_RETURN(std::vector<CopyDesc> d, BuildCopyDescs(j));
      descs.insert(descs.end(), d.begin(), d.end());
    }
    SC_RETURN_IF_ERROR(LaunchCopyDescs(descs.data(), descs.size(), stream_));
    SC_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return absl::OkStatus();
  }
  std::string device() const override { return absl::StrCat("cuda:", device_); }
  cudaStream_t stream() const { return stream_; }

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
};

class CudaStagingExecutor : public ShardExecutor {
 public:
  explicit CudaStagingExecutor(std::unique_ptr<CudaExecutor> inner) : inner_(std::move(inner)) {}
  ~CudaStagingExecutor() override {
    if (arena_ != nullptr) cudaFree(arena_);
  }

  absl::Status Run(const std::vector<ShardJob>& jobs) override {
    // Lay every source and destination out in one device arena.
    struct Staged {
      std::vector<SourceBuffer> sources;
      uint64_t dst_offset = 0, dst_bytes = 0;
    };
    std::vector<Staged> staged(jobs.size());
    std::vector<std::pair<uint64_t, std::pair<const void*, uint64_t>>> uploads;  // arena offset, host src, bytes
    uint64_t total = 0;
    auto take = [&](uint64_t n) {
      const uint64_t off = total;
      total += (n + 255) / 256 * 256;
      return off;
    };
    for (size_t i = 0; i < jobs.size(); ++i) {
      const ShardJob& j = jobs[i];
      const size_t item = ItemSize(j.plan->tensor->dtype);
      staged[i].sources.resize(j.sources->size());
      for (size_t k = 0; k < j.sources->size(); ++k) {
        const SourceBuffer& s = (*j.sources)[k];
        if (s.data == nullptr) continue;
        const uint64_t n = static_cast<uint64_t>(*NumElements(s.box.sizes)) * item;
        const uint64_t off = take(n);
        uploads.push_back({off, {s.data, n}});
        staged[i].sources[k] = SourceBuffer{reinterpret_cast<const void*>(off), s.box};  // rebased below
      }
      staged[i].dst_bytes = j.plan->num_elements() * ItemSize(j.dst_dtype);
      staged[i].dst_offset = take(staged[i].dst_bytes);
    }
    if (total > arena_bytes_) {
      if (arena_ != nullptr) cudaFree(arena_);
      arena_ = nullptr;
      arena_bytes_ = 0;
      SC_CUDA_RETURN_IF_ERROR(cudaMalloc(&arena_, total));
      arena_bytes_ = total;
    }
    char* base = static_cast<char*>(arena_);
    for (const auto& [off, src] : uploads) {
      SC_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(base + off, src.first, src.second, cudaMemcpyHostToDevice, inner_->stream()));
    }
    std::vector<ShardJob> device_jobs;
    for (size_t i = 0; i < jobs.size(); ++i) {
      for (size_t k = 0; k < staged[i].sources.size(); ++k) {
        if ((*jobs[i].sources)[k].data == nullptr) continue;  // not provided by the caller
        SourceBuffer& s = staged[i].sources[k];
        s.data = base + reinterpret_cast<uintptr_t>(s.data);  // arena offset -> device pointer
      }
      device_jobs.push_back(ShardJob{jobs[i].plan, &staged[i].sources, base + staged[i].dst_offset, jobs[i].dst_dtype});
    }
    SC_RETURN_IF_ERROR(inner_->Run(device_jobs));
    for (size_t i = 0; i < jobs.size(); ++i) {
      SC_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(jobs[i].dst, base + staged[i].dst_offset, staged[i].dst_bytes,
                                              cudaMemcpyDeviceToHost, inner_->stream()));
    }
    SC_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(inner_->stream()));
    return absl::OkStatus();
  }
  std::string device() const override { return inner_->device(); }

 private:
  std::unique_ptr<CudaExecutor> inner_;
  void* arena_ = nullptr;
  uint64_t arena_bytes_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ShardExecutor>> NewCudaExecutor(int device) {
  SC_RETURN_IF_ERROR(RequireCudaDevice(device));
  auto ex = std::make_unique<CudaExecutor>(device);
  SC_RETURN_IF_ERROR(ex->Init());
  return std::unique_ptr<ShardExecutor>(std::move(ex));
}

absl::StatusOr<std::unique_ptr<ShardExecutor>> NewCudaStagingExecutor(int device) {
  SC_RETURN_IF_ERROR(RequireCudaDevice(device));
  auto ex = std::make_unique<CudaExecutor>(device);
  SC_RETURN_IF_ERROR(ex->Init());
  return std::unique_ptr<ShardExecutor>(std::make_unique<CudaStagingExecutor>(std::move(ex)));
}

}  // namespace shardcast
