#include "kernels/device_buffer.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"

namespace shardcast {

absl::StatusOr<void*> DeviceAlloc(size_t n, int device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || device >= count) {
    cudaGetLastError();
    return absl::UnavailableError(absl::StrCat("no CUDA device ", device, "; use --device cpu"));
  }
  cudaSetDevice(device);
  void* p = nullptr;
  if (cudaMalloc(&p, n ? n : 1) != cudaSuccess) {
    cudaGetLastError();
    return absl::ResourceExhaustedError(absl::StrCat("cudaMalloc of ", n, " bytes failed"));
  }
  return p;
}

void DeviceFree(void* p) { cudaFree(p); }

absl::Status CopyDeviceToHost(void* host, const void* device_ptr, size_t n) {
  cudaError_t e = cudaMemcpy(host, device_ptr, n, cudaMemcpyDeviceToHost);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return absl::InternalError(absl::StrCat("cudaMemcpy D2H: ", cudaGetErrorString(e)));
  }
  return absl::OkStatus();
}

}  // namespace shardcast
