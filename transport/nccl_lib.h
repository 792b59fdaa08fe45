// NcclLib: NCCL loaded at run time with dlopen, from a path the operator chooses (--nccl-lib or
// SHARDCAST_NCCL_LIBRARY), so the sidecar can run the very libnccl the training processes have
// loaded (PyTorch's). Two different NCCL builds in one communicator hang in ncclCommInitRank
// (field notes: 2.28.3 vs 2.28.9), which is why clients and servers compare versions first.
#ifndef SHARDCAST_TRANSPORT_NCCL_LIB_H_
#define SHARDCAST_TRANSPORT_NCCL_LIB_H_

#include <nccl.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace shardcast {

struct NcclLib {
  std::string path;  // what was loaded
  int version = 0;   // ncclGetVersion()
  decltype(&::ncclGetVersion) GetVersion = nullptr;
  decltype(&::ncclGetUniqueId) GetUniqueId = nullptr;
  decltype(&::ncclCommInitRankConfig) CommInitRankConfig = nullptr;
  decltype(&::ncclCommGetAsyncError) CommGetAsyncError = nullptr;
  decltype(&::ncclCommAbort) CommAbort = nullptr;
  decltype(&::ncclCommDestroy) CommDestroy = nullptr;
  decltype(&::ncclSend) Send = nullptr;
  decltype(&::ncclRecv) Recv = nullptr;
  decltype(&::ncclGroupStart) GroupStart = nullptr;
  decltype(&::ncclGroupEnd) GroupEnd = nullptr;
  decltype(&::ncclGetErrorString) GetErrorString = nullptr;

  // Loads `path` ("" = $SHARDCAST_NCCL_LIBRARY, else libnccl.so.2 from the loader's search path).
  // NotFound naming the path and the dlerror.
  static absl::StatusOr<std::shared_ptr<const NcclLib>> Load(const std::string& path);

  // 22809 -> "2.28.9".
  static std::string VersionString(int code);
};

// The refusal for mismatched builds, naming both versions and the fix.
absl::Status NcclVersionMismatch(int server_version, const std::string& server_path, int client_version);

}  // namespace shardcast

#endif  // SHARDCAST_TRANSPORT_NCCL_LIB_H_
