#include "kernels/cuda_device.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"

namespace shardcast {

int CudaDeviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

absl::Status RequireCudaDevice(int device) {
  const int n = CudaDeviceCount();
  if (device >= 0 && device < n) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("no CUDA device ", device, " (", n, " visible); use --device cpu on machines without a GPU"));
}

}  // namespace shardcast
