#include "transport/cuda_ipc.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/step_trace.h"
#include "kernels/batch_copy.h"
#include "kernels/cuda_status.h"

namespace shardcast {
absl::StatusOr<std::string> DeviceUuid(int device) {
  cudaDeviceProp prop;
  SC_RETURN_IF_ERROR(CudaStatus(cudaGetDeviceProperties(&prop, device), absl::StrCat("cudaGetDeviceProperties(", device, ")")));
  return std::string(prop.uuid.bytes, sizeof(prop.uuid.bytes));
}

std::string FormatUuid(const std::string& uuid) {
  if (uuid.size() != 16) return absl::StrCat("<", uuid.size(), "-byte uuid>");
  std::string hex;
  for (unsigned char c : uuid) absl::StrAppendFormat(&hex, "%02x", c);
  return absl::StrCat("GPU-", hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-", hex.substr(16, 4), "-",
                      hex.substr(20));
}

absl::StatusOr<std::string> ExportIpcHandle(int device, const void* base) {
  SC_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
  cudaIpcMemHandle_t h;
  SC_RETURN_IF_ERROR(CudaStatus(cudaIpcGetMemHandle(&h, const_cast<void*>(base)), "cudaIpcGetMemHandle"));
  return std::string(reinterpret_cast<const char*>(&h), sizeof(h));
}

namespace {

// The size of the allocation that `mapped` (an IPC mapping's base) lies in, from the driver's
// cuMemGetAddressRange, reached through the runtime (no link against libcuda): the client checks
// the server's offsets against it, so that a hostile or broken sidecar cannot make it read
// outside what was exported.
absl::StatusOr<uint64_t> MappedAllocationBytes(void* mapped) {
  using GetAddressRange = int (*)(unsigned long long* base, size_t* size, unsigned long long ptr);
  static GetAddressRange get_range = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found;
    if (cudaGetDriverEntryPointByVersion("cuMemGetAddressRange", &fn, 12000, cudaEnableDefault, &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      fn = nullptr;
    }
    return reinterpret_cast<GetAddressRange>(fn);
  }();
  if (get_range == nullptr) return absl::InternalError("the CUDA driver lacks cuMemGetAddressRange");
  unsigned long long base = 0;
  size_t size = 0;
  if (const int rc = get_range(&base, &size, reinterpret_cast<unsigned long long>(mapped)); rc != 0) {
    return absl::InternalError(absl::StrCat("cuMemGetAddressRange of a CUDA IPC mapping failed (CUresult ", rc, ")"));
  }
  return static_cast<uint64_t>(size - (reinterpret_cast<unsigned long long>(mapped) - base));
}

}  // namespace



namespace {

absl::StatusOr<void*> OpenHandle(const std::string& handle) {
  if (handle.size() != sizeof(cudaIpcMemHandle_t)) {
    return absl::DataLossError(absl::StrCat("a CUDA IPC handle has ", handle.size(), " bytes"));
  }
  cudaIpcMemHandle_t h;
  std::memcpy(&h, handle.data(), sizeof(h));
  void* mapped = nullptr;
  SC_RETURN_IF_ERROR(
      CudaStatus(cudaIpcOpenMemHandle(&mapped, h, cudaIpcMemLazyEnablePeerAccess),
                 "cudaIpcOpenMemHandle (is the sidecar in another IPC namespace? share it, e.g. one pod or --ipc=host)"));
  return mapped;
}

}  // namespace

IpcMappings::~IpcMappings() {
  for (const auto& [key, mapped] : mapped_) {
    cudaSetDevice(key.first);
    cudaIpcCloseMemHandle(mapped);
  }
}

absl::StatusOr<void*> IpcMappings::Get(int device, const std::string& handle) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = mapped_.find({device, handle});
  if (it != mapped_.end()) return it->second;
  if (mapped_.size() >= kMaxMappings) return nullptr;
  SC_ASSIGN_OR_RETURN(void* mapped, OpenHandle(handle));
  mapped_.emplace(std::make_pair(device, handle), mapped);
  return mapped;
}

size_t IpcMappings::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mapped_.size();
}

absl::Status IpcCopy(int device, const std::vector<IpcRegion>& regions, const std::vector<IpcPiece>& pieces,
                     std::chrono::milliseconds deadline, IpcMappings* mappings) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  StepTrace trace("ipc copy:");
  SC_RETURN_IF_ERROR(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
  std::vector<void*> mapped(regions.size(), nullptr);
  std::vector<bool> kept(regions.size(), false);  // mapped through `mappings`: not ours to close
  cudaStream_t stream = nullptr;
  auto cleanup = [&] {
    if (stream) cudaStreamDestroy(stream);
    for (size_t i = 0; i < mapped.size(); ++i) {
      if (mapped[i] && !kept[i]) cudaIpcCloseMemHandle(mapped[i]);
    }
  };
  absl::Status s;
  for (size_t i = 0; i < regions.size() && s.ok(); ++i) {
    if (regions[i].resident && mappings != nullptr) {
      absl::StatusOr<void*> m = mappings->Get(device, regions[i].handle);
      s = m.status();
      if (m.ok() && *m != nullptr) {
        mapped[i] = *m;
        kept[i] = true;
        continue;
      }
    }
    if (!s.ok()) break;
    absl::StatusOr<void*> m = OpenHandle(regions[i].handle);
    s = m.status();
    if (m.ok()) mapped[i] = *m;
  }
  trace.Mark("open");
  std::vector<uint64_t> mapped_bytes(mapped.size(), 0);
  for (size_t i = 0; i < mapped.size() && s.ok(); ++i) {
    absl::StatusOr<uint64_t> n = MappedAllocationBytes(mapped[i]);
    if (n.ok()) mapped_bytes[i] = *n;
    s = n.status();
  }
  if (s.ok()) s = CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  trace.Mark("size+stream");
  std::vector<CopySegment> segments;
  for (const IpcPiece& p : pieces) {
    if (!s.ok()) break;
    if (p.region >= mapped.size()) {
      s = absl::DataLossError(absl::StrCat("a shard names CUDA IPC region ", p.region, " of ", mapped.size()));
      break;
    }
    const uint64_t have = mapped_bytes[p.region];
    if (p.offset > have || p.nbytes > have - p.offset) {
      s = absl::DataLossError(absl::StrCat("a shard of ", p.nbytes, " bytes at offset ", p.offset,
                                           " lies outside the loader's CUDA IPC allocation of ", have, " bytes"));
      break;
    }
    if (p.nbytes == 0) continue;
    segments.push_back(CopySegment{static_cast<const char*>(mapped[p.region]) + p.offset, p.dst, p.nbytes});
  }
  // One or a few kernel launches for all of them (kernels/batch_copy.h): one cudaMemcpyAsync per
  // shard cost more host time than the copies.
  if (s.ok()) s = LaunchBatchCopy(segments.data(), segments.size(), stream);
  trace.Mark("enqueue");
  // Poll with a deadline rather than block: a wedged device must not mean a hang.
  while (s.ok()) {
    const cudaError_t q = cudaStreamQuery(stream);
    if (q == cudaSuccess) break;
    if (q != cudaErrorNotReady) {
      s = CudaStatus(q, "CUDA IPC copy");
      break;
    }
    if (std::chrono::steady_clock::now() > until) {
      s = absl::DeadlineExceededError(absl::StrCat("CUDA IPC copy did not finish within ", deadline.count(), " ms"));
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  if (absl::IsDeadlineExceeded(s)) return s;  // copies may still run: leave the mappings rather than race them
  if (!s.ok() && stream != nullptr) cudaStreamSynchronize(stream);  // let enqueued copies end before unmapping
  trace.Mark("copies");
  cleanup();
  trace.Mark("close");
  return s;
}

}  // namespace shardcast
