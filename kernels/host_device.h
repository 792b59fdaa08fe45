// SC_HOST_DEVICE: functions shared by host code (compiled by g++) and CUDA kernels (nvcc), so the
// index math and dtype casts tested on the CPU are the ones the GPU runs.
#ifndef SHARDCAST_KERNELS_HOST_DEVICE_H_
#define SHARDCAST_KERNELS_HOST_DEVICE_H_

#if defined(__CUDACC__)
#define SC_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SC_HOST_DEVICE inline
#endif

#endif  // SHARDCAST_KERNELS_HOST_DEVICE_H_
