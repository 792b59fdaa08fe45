// Shard executors: fill planned shards from source buffers. The CPU executor here is the
// reference; the CUDA executor (reshard/cuda_executor.h) has the same interface and runs the same
// CopyDesc math on the GPU.
#ifndef SHARDCAST_RESHARD_EXECUTOR_H_
#define SHARDCAST_RESHARD_EXECUTOR_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "kernels/copy_desc.h"
#include "reshard/planner.h"

namespace shardcast {

// A dense C-order buffer holding `box` of a stored tensor, in the tensor's dtype; host or device
// memory, as the executor expects.
struct SourceBuffer {
  const void* data = nullptr;
  Box box;
};

// One shard to fill: `sources[i]` holds (at least) the parts of chunk i that the plan's ops read.
struct ShardJob {
  const ShardPlan* plan = nullptr;
  const std::vector<SourceBuffer>* sources = nullptr;
  void* dst = nullptr;       // copy_shape elements of dst_dtype, dense C order
  DType dst_dtype = DType::kFloat32;
};

// The descriptors for one job (one per op, one per zero fill), validated: every op's source box
// lies inside a provided source buffer; casts only between float32, bfloat16 and float16.
absl::StatusOr<std::vector<CopyDesc>> BuildCopyDescs(const ShardJob& job);

// The casts (CanCast, OutputDType, ParseCastDType) are common/dtype.h's.

class ShardExecutor {
 public:
  virtual ~ShardExecutor() = default;
  // Fills every job's destination. Sources and destinations live where the executor computes
  // (host memory for "cpu", device memory for "cuda").
  virtual absl::Status Run(const std::vector<ShardJob>& jobs) = 0;
  virtual std::string device() const = 0;
};

std::unique_ptr<ShardExecutor> NewCpuExecutor(int threads = 4);

}  // namespace shardcast

#endif  // SHARDCAST_RESHARD_EXECUTOR_H_
