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
  int64_t tiles_per_row;               // when rows_per_tile == 1
  int32_t rows_per_tile = 1;           // > 1: short rows, several per warp tile
};

__device__ __forceinline__ void RowOffsets(const RowGeometry& g, int64_t row, int64_t* so, int64_t* dof) {
  if (g.outer_rank <= 1) {  // the common 2-D case: no divisions
    *so = g.outer_rank ? row * g.src_stride[0] : 0;
    *dof = g.outer_rank ? row * g.dst_stride[0] : 0;
    return;
  }
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
  if (g.rows_per_tile > 1) {
    // Short rows: a tile holds rows_per_tile whole rows, its slots spread over them.
    const int32_t run = static_cast<int32_t>(g.run);
    const int64_t tiles = (g.rows + g.rows_per_tile - 1) / g.rows_per_tile;
    for (int64_t tile = warp; tile < tiles; tile += warps) {
      const int64_t row0 = tile * g.rows_per_tile;
      V vals[kUnroll];
      int64_t so[kUnroll], dof[kUnroll];
      bool live[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int32_t idx = u * 32 + lane;
        const int32_t r = idx / run;
        const int32_t v = idx - r * run;
        live[u] = r < g.rows_per_tile && row0 + r < g.rows;
        if (live[u]) {
          RowOffsets(g, row0 + r, &so[u], &dof[u]);
          so[u] += v;
          dof[u] += v;
          vals[u] = src ? src[so[u]] : V{};
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (live[u]) dst[dof[u]] = vals[u];
      }
    }
    return;
  }
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

// Casts rows that are contiguous on both sides, 4 elements per thread with vector loads/stores.

template <cast::FloatKind kSrcKind, cast::FloatKind kDstKind>
__device__ __forceinline__ void Cast4(const char* s, char* o) {
  float f[4];
  if (kSrcKind == cast::FloatKind::kFloat32) {
    const float4 v = *reinterpret_cast<const float4*>(s);
    f[0] = v.x; f[1] = v.y; f[2] = v.z; f[3] = v.w;
  } else {
    const uint2 v = *reinterpret_cast<const uint2*>(s);
    const uint16_t h[4] = {static_cast<uint16_t>(v.x & 0xFFFFu), static_cast<uint16_t>(v.x >> 16),
                           static_cast<uint16_t>(v.y & 0xFFFFu), static_cast<uint16_t>(v.y >> 16)};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      f[k] = kSrcKind == cast::FloatKind::kBFloat16 ? cast::BFloat16ToFloat(h[k]) : cast::HalfToFloat(h[k]);
    }
  }
  if (kDstKind == cast::FloatKind::kFloat32) {
    *reinterpret_cast<float4*>(o) = make_float4(f[0], f[1], f[2], f[3]);
  } else {
    uint16_t h[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      h[k] = kDstKind == cast::FloatKind::kBFloat16 ? cast::FloatToBFloat16(f[k]) : cast::FloatToHalf(f[k]);
    }
    *reinterpret_cast<uint2*>(o) = make_uint2(h[0] | (static_cast<uint32_t>(h[1]) << 16),
                                              h[2] | (static_cast<uint32_t>(h[3]) << 16));
  }
}

template <cast::FloatKind kSrcKind, cast::FloatKind kDstKind>
__global__ void CastRowsKernel(const char* __restrict__ src, char* __restrict__ dst, RowGeometry g, int src_item,
                               int dst_item) {
  // g.run counts groups of 4 elements; strides are in elements.
  const int lane = threadIdx.x & 31;
  const int64_t warp = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int64_t warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) >> 5;
  const int64_t tiles = g.rows * g.tiles_per_row;
  for (int64_t tile = warp; tile < tiles; tile += warps) {
    const int64_t row = tile / g.tiles_per_row;
    const int64_t base = (tile - row * g.tiles_per_row) * kTileVecs;
    int64_t so, dof;
    RowOffsets(g, row, &so, &dof);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t v = base + u * 32 + lane;
      if (v < g.run) Cast4<kSrcKind, kDstKind>(src + (so + 4 * v) * src_item, dst + (dof + 4 * v) * dst_item);
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
  int64_t tiles = g.rows * g.tiles_per_row;
  if (g.run * 2 <= kTileVecs && g.rows > 1) {
    g.rows_per_tile = static_cast<int32_t>(kTileVecs / g.run);
    tiles = (g.rows + g.rows_per_tile - 1) / g.rows_per_tile;
  }
  CopyRowsKernel<V><<<GridFor(tiles), kThreads, 0, stream>>>(
      reinterpret_cast<const V*>(c.src), reinterpret_cast<V*>(c.dst), g);
}

// 4-element groups need every row start 4-element aligned in bytes on both sides: 16 B for
// float32, 8 B for 16-bit types.
bool CastVectorizable(const CopyDesc& c) {
  if (c.rank == 0 || c.src_stride[c.rank - 1] != 1 || c.dst_stride[c.rank - 1] != 1) return false;
  if (c.extent[c.rank - 1] % 4 != 0) return false;
  if (reinterpret_cast<uintptr_t>(c.src) % (4 * c.src_item) != 0) return false;
  if (reinterpret_cast<uintptr_t>(c.dst) % (4 * c.dst_item) != 0) return false;
  for (int k = 0; k + 1 < c.rank; ++k) {
    if (c.src_stride[k] % 4 != 0 || c.dst_stride[k] % 4 != 0) return false;
  }
  return true;
}

template <cast::FloatKind S, cast::FloatKind D>
void LaunchCast(const CopyDesc& c, RowGeometry g, cudaStream_t stream) {
  g.run /= 4;
  g.tiles_per_row = (g.run + kTileVecs - 1) / kTileVecs;
  CastRowsKernel<S, D><<<GridFor(g.rows * g.tiles_per_row), kThreads, 0, stream>>>(c.src, c.dst, g, c.src_item,
                                                                                  c.dst_item);
}

bool LaunchVectorCast(const CopyDesc& c, const RowGeometry& g, cudaStream_t stream) {
  using K = cast::FloatKind;
  const K s = static_cast<K>(c.src_kind), d = static_cast<K>(c.dst_kind);
  if (s == K::kBFloat16 && d == K::kFloat32) LaunchCast<K::kBFloat16, K::kFloat32>(c, g, stream);
  else if (s == K::kFloat16 && d == K::kFloat32) LaunchCast<K::kFloat16, K::kFloat32>(c, g, stream);
  else if (s == K::kFloat32 && d == K::kBFloat16) LaunchCast<K::kFloat32, K::kBFloat16>(c, g, stream);
  else if (s == K::kFloat32 && d == K::kFloat16) LaunchCast<K::kFloat32, K::kFloat16>(c, g, stream);
  else if (s == K::kBFloat16 && d == K::kFloat16) LaunchCast<K::kBFloat16, K::kFloat16>(c, g, stream);
  else if (s == K::kFloat16 && d == K::kBFloat16) LaunchCast<K::kFloat16, K::kBFloat16>(c, g, stream);
  else return false;
  return true;
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
      if (c.is_cast() && c.src != nullptr && CastVectorizable(c) && LaunchVectorCast(c, g, stream)) {
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return absl::InternalError(absl::StrCat("CUDA launch failed: ", cudaGetErrorString(err)));
        continue;
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
