// CUDA IPC for a client on the loader rank's own GPU. NCCL refuses two ranks on one GPU
// ("Duplicate GPU detected"), and a sidecar shares the node's GPUs with training, so a training
// rank whose GPU is also its loader rank's maps the loader's allocation and copies device-locally
// instead. The loader side exports handles (ExportIpcHandle); the client side maps, copies and
// unmaps (IpcCopy). Every wait has a deadline.
#ifndef SHARDCAST_TRANSPORT_CUDA_IPC_H_
#define SHARDCAST_TRANSPORT_CUDA_IPC_H_

#include <chrono>
#include <cstdint>
#include <string>
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

// Maps every handle on `device`, copies every piece (device to device), waits for the copies
// (at most `deadline`), and unmaps. DataLoss for a piece naming a handle that is not there.
absl::Status IpcCopy(int device, const std::vector<std::string>& handles, const std::vector<IpcPiece>& pieces,
                     std::chrono::milliseconds deadline);

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_CUDA_IPC_H_
