// CUDA errors as absl::Status, converted in one place: CUDA's message kept, the sticky error
// cleared, allocation failures ResourceExhausted, a missing device or driver Unavailable.
#ifndef SHARDCAST_KERNELS_CUDA_STATUS_H_
#define SHARDCAST_KERNELS_CUDA_STATUS_H_

#include <cuda_runtime.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace shardcast {

inline absl::Status CudaStatus(cudaError_t err, const std::string& what) {
  if (err == cudaSuccess) return absl::OkStatus();
  cudaGetLastError();
  const std::string msg = absl::StrCat(what, ": ", cudaGetErrorString(err));
  if (err == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(msg);
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

}  // namespace shardcast

// Returns from the enclosing function with the call's error, named by the call's text.
#define SC_CUDA_RETURN_IF_ERROR(call) SC_RETURN_IF_ERROR(::shardcast::CudaStatus((call), #call))

#endif  // SHARDCAST_KERNELS_CUDA_STATUS_H_
