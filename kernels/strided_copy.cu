// CUDA kernels for N-d strided box copies (optionally casting between float32, bfloat16 and
// float16, or filling zeros): the GPU side of the shard executor.
//
// Work is cut into warp tiles: a tile is TILE consecutive vectors of one innermost run ("row"),
// so one warp issues coalesced, vectorized loads and stores whether the copy is a few long runs
// (dim-0 slices, whole tensors) or many short ones (dim-1 slices of row-parallel weights).
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "kernels/copy_desc.h"
#include "kernels/strided_copy.h"

namespace shardcast {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;
constexpr int kTileVecs = 32 * kUnroll;

struct RowGeometry {
  int outer_rank;                      // dims before the innermost
  int64_t extent[kMaxCopyRank];
  int64_t src_stride[kMaxCopyRank];    // in units of the kernel's element (vector or scalar)
  int64_t dst_stride[kMaxCopyRank];
  int64_t rows;
  int64_t run;                         // elements per row
  int64_t tiles_per_row;
};

__device__ __forceinline__ void RowOffsets(const RowGeometry& g, int64_t row, int64_t* so, int64_t* dof) {
  int64_t s = 0, d = 0;
  for (int k = g.outer_rank - 1; k >= 0; --k) {
    const int64_t i = row % g.extent[k];
    row /= g.extent[k];
    s += i * g.src_stride[k];
    d += i * g.dst_stride[k];
  }
  *so = s;
  *dof = d;
}

// Raw copy (or zero fill when src == nullptr) of rows whose elements are contiguous on both
// sides, with element type V (uint4, uint2, uint32_t, uint16_t, uint8_t).
template <typename V>
__global__ void CopyRowsKernel(const V* __restrict__ src, V* __restrict__ dst, RowGeometry g) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const int64_t tiles = g.rows * g.tiles_per_row;
  for (int64_t tile = warp; tile < tiles; tile += warps) {
    const int64_t row = tile / g.tiles_per_row;
    const int64_t base = (tile - row * g.tiles_per_row) * kTileVecs;
    int64_t so, dof;
    RowOffsets(g, row, &so, &dof);
    V vals[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + u * 32 + lane;
      if (v < g.run) vals[u] = src ? src[so + v] : V{};
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + u * 32 + lane;
      if (v < g.run) dst[dof + v] = vals[u];
    }
  }
}

// Element-wise copy with arbitrary inner strides and an optional float cast.
__global__ void CopyElementsKernel(const char* __restrict__ src, char* __restrict__ dst, RowGeometry g,
                                   int64_t src_inner, int64_t dst_inner, int src_item, int dst_item, int src_kind,
                                   int dst_kind) {
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const int64_t tiles = g.rows * g.tiles_per_row;
  const bool casting = src_kind >= 0 && src_kind != dst_kind;
  for (int64_t tile = warp; tile < tiles; tile += warps) {
    const int64_t row = tile / g.tiles_per_row;
    const int64_t base = (tile - row * g.tiles_per_row) * kTileVecs;
    int64_t so, dof;
    RowOffsets(g, row, &so, &dof);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t e = base + u * 32 + lane;
      if (e >= g.run) continue;
      char* o = dst + (dof + e * dst_inner) * dst_item;
      if (src == nullptr) {
        for (int b = 0; b < dst_item; ++b) o[b] = 0;
        continue;
      }
      const char* s = src + (so + e * src_inner) * src_item;
      if (casting) {
        cast::StoreFromFloat(o, static_cast<cast::FloatKind>(dst_kind),
                             cast::LoadAsFloat(s, static_cast<cast::FloatKind>(src_kind)));
      } else {
        for (int b = 0; b < src_item; ++b) o[b] = s[b];
      }
    }
  }
}

int GridFor(int64_t tiles) {
  static int sms = [] {
    int dev = 0, n = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    return n > 0 ? n : 80;
  }();
  const int64_t warps_per_block = kThreads / 32;
  int64_t blocks = (tiles + warps_per_block - 1) / warps_per_block;
  const int64_t cap = static_cast<int64_t>(sms) * 16;
  if (blocks > cap) blocks = cap;
  return static_cast<int>(blocks < 1 ? 1 : blocks);
}

RowGeometry Geometry(const CopyDesc& c, int64_t unit_div) {
  RowGeometry g{};
  g.outer_rank = c.rank > 0 ? c.rank - 1 : 0;
  g.rows = 1;
  for (int k = 0; k < g.outer_rank; ++k) {
    g.extent[k] = c.extent[k];
    g.src_stride[k] = c.src_stride[k] * c.src_item / unit_div;
    g.dst_stride[k] = c.dst_stride[k] * c.dst_item / unit_div;
    g.rows *= c.extent[k];
  }
  g.run = c.rank > 0 ? c.extent[c.rank - 1] : 1;
  return g;
}

bool Aligned(const CopyDesc& c, int v) {
  if (reinterpret_cast<uintptr_t>(c.dst) % v != 0) return false;
  if (c.src != nullptr && reinterpret_cast<uintptr_t>(c.src) % v != 0) return false;
  const int64_t run_bytes = (c.rank > 0 ? c.extent[c.rank - 1] : 1) * c.dst_item;
  if (run_bytes % v != 0) return false;
  for (int k = 0; k + 1 < c.rank; ++k) {
    if ((c.src_stride[k] * c.src_item) % v != 0 || (c.dst_stride[k] * c.dst_item) % v != 0) return false;
  }
  return true;
}

template <typename V>
void LaunchRows(const CopyDesc& c, cudaStream_t stream) {
  RowGeometry g = Geometry(c, sizeof(V));
  g.run = g.run * c.dst_item / static_cast<int64_t>(sizeof(V));
  g.tiles_per_row = (g.run + kTileVecs - 1) / kTileVecs;
  CopyRowsKernel<V><<<GridFor(g.rows * g.tiles_per_row), kThreads, 0, stream>>>(
      reinterpret_cast<const V*>(c.src), reinterpret_cast<V*>(c.dst), g);
}

}  // namespace

absl::Status LaunchCopyDescs(const CopyDesc* descs, size_t n, void* stream_ptr) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_ptr);
  for (size_t i = 0; i < n; ++i) {
    const CopyDesc& c = descs[i];
    if (c.num_elements() == 0) continue;
    const bool inner_unit = c.rank == 0 || (c.dst_stride[c.rank - 1] == 1 && (c.src == nullptr || c.src_stride[c.rank - 1] == 1));
    if (!c.is_cast() && inner_unit && c.src_item == c.dst_item) {
      if (Aligned(c, 16)) {
        LaunchRows<uint4>(c, stream);
      } else if (Aligned(c, 8)) {
        LaunchRows<uint2>(c, stream);
      } else if (Aligned(c, 4)) {
        LaunchRows<uint32_t>(c, stream);
      } else if (Aligned(c, 2)) {
        LaunchRows<uint16_t>(c, stream);
      } else {
        LaunchRows<uint8_t>(c, stream);
      }
    } else {
      RowGeometry g = Geometry(c, 1);
      // Geometry scaled strides to bytes; the element kernel wants elements.
      for (int k = 0; k < g.outer_rank; ++k) {
        g.src_stride[k] = c.src_stride[k];
        g.dst_stride[k] = c.dst_stride[k];
      }
      g.tiles_per_row = (g.run + kTileVecs - 1) / kTileVecs;
      const int64_t si = c.rank > 0 ? c.src_stride[c.rank - 1] : 0;
      const int64_t di = c.rank > 0 ? c.dst_stride[c.rank - 1] : 0;
      CopyElementsKernel<<<GridFor(g.rows * g.tiles_per_row), kThreads, 0, stream>>>(
          c.src, c.dst, g, si, di, c.src_item, c.dst_item, c.src_kind, c.dst_kind);
    }
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) {
      return absl::InternalError(absl::StrCat("CUDA launch failed: ", cudaGetErrorString(err)));
    }
  }
  return absl::OkStatus();
}

}  // namespace shardcast
