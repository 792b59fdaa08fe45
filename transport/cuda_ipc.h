// CUDA IPC for a client on the loader rank's own GPU. NCCL refuses two ranks on one GPU
// ("Duplicate GPU detected"), and a sidecar shares the node's GPUs with training, so a training
// rank whose GPU is also its loader rank's maps the loader's allocation and copies device-locally
// instead. The loader side exports handles (ExportIpcHandle); the client side maps, copies and
// unmaps (IpcCopy). Every wait has a deadline.
#ifndef SHARDCAST_TRANSPORT_CUDA_IPC_H_
#define SHARDCAST_TRANSPORT_CUDA_IPC_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace shardcast {

// The GPU's UUID (16 bytes): the same physical GPU gives the same bytes in every process,
// whatever CUDA_VISIBLE_DEVICES renumbers.
absl::StatusOr<std::string> DeviceUuid(int device);
// "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi prints it.
std::string FormatUuid(const std::string& uuid);

// A cudaIpcMemHandle_t (64 bytes) for the allocation starting at `base` (from cudaMalloc).
absl::StatusOr<std::string> ExportIpcHandle(int device, const void* base);

// One shard to copy: `nbytes` at `offset` in the allocation of handle `region`, to `dst`.
struct IpcPiece {
  uint32_t region = 0;
  uint64_t offset = 0;
  void* dst = nullptr;  // device memory on the client's device
  uint64_t nbytes = 0;
};

// One exported allocation: its handle, and whether it lives until the service exits.
struct IpcRegion {
  std::string handle;     // cudaIpcMemHandle_t bytes
  bool resident = false;
};

// A client's mappings of resident allocations (the loader's tensors, and the blocks its requests'
// cut shards live in: server/slab_arena.h), kept across receives: mapping a large allocation
// costs milliseconds (cudaIpcOpenMemHandle, then Close), paid once per allocation instead of per
// receive. Thread-safe; unmaps everything when destroyed. Holds
// at most kMaxMappings (beyond: mapped and unmapped per receive, as non-resident ones are).
class IpcMappings {
 public:
  static constexpr size_t kMaxMappings = 64;
  IpcMappings() = default;
  ~IpcMappings();
  IpcMappings(const IpcMappings&) = delete;
  IpcMappings& operator=(const IpcMappings&) = delete;

  // The mapping of `handle` on `device`, opened now if new; nullptr when full.
  absl::StatusOr<void*> Get(int device, const std::string& handle);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<int, std::string>, void*> mapped_;
};

// Maps every region on `device` (resident ones through `mappings` when given, kept mapped),
// copies every piece (device to device, a few kernel launches: kernels/batch_copy.h), waits for the copies (at most
// `deadline`), and unmaps the others. DataLoss for a piece naming a region that is not there.
absl::Status IpcCopy(int device, const std::vector<IpcRegion>& regions, const std::vector<IpcPiece>& pieces,
                     std::chrono::milliseconds deadline, IpcMappings* mappings = nullptr);

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_CUDA_IPC_H_
