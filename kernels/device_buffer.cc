#include "kernels/device_buffer.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_device.h"
#include "kernels/cuda_status.h"

namespace shardcast {

absl::StatusOr<void*> DeviceAlloc(size_t n, int device) {
  SC_RETURN_IF_ERROR(RequireCudaDevice(device));
  SC_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  void* p = nullptr;
  SC_RETURN_IF_ERROR(CudaStatus(cudaMalloc(&p, n ? n : 1), absl::StrCat("cudaMalloc of ", n, " bytes")));
  return p;
}

void DeviceFree(void* p) { cudaFree(p); }

absl::Status CopyDeviceToHost(void* host, const void* device_ptr, size_t n) {
  return CudaStatus(cudaMemcpy(host, device_ptr, n, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}

}  // namespace shardcast
