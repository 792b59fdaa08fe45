// CopyDesc: one N-d strided box copy (optionally with a float cast, or a zero fill), the unit of
// work of both executors. Built on the host from a planned CopyOp; run by the CPU loop
// (RunCopyDescOnHost) or the CUDA kernels (strided_copy.cu). Header-only, no CUDA dependency.
#ifndef SHARDCAST_KERNELS_COPY_DESC_H_
#define SHARDCAST_KERNELS_COPY_DESC_H_

#include <cstdint>
#include <cstring>

#include "kernels/dtype_cast.h"
#include "kernels/host_device.h"

namespace shardcast {

constexpr int kMaxCopyRank = 8;

struct CopyDesc {
  int rank = 0;                      // 0: a single element
  int64_t extent[kMaxCopyRank] = {};
  int64_t src_stride[kMaxCopyRank] = {};  // in source elements
  int64_t dst_stride[kMaxCopyRank] = {};  // in destination elements
  const char* src = nullptr;         // nullptr: fill the destination with zeros
  char* dst = nullptr;
  int src_item = 1, dst_item = 1;    // bytes per element
  int src_kind = -1, dst_kind = -1;  // cast::FloatKind when casting; -1 for a raw copy

  bool is_cast() const { return src_kind >= 0 && src_kind != dst_kind; }
  int64_t num_elements() const {
    int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= extent[d];
    return n;
  }
};

// Drops size-1 dims and merges neighbours that are contiguous in both source and destination,
// so that a box of whole rows becomes one run.
inline void CoalesceCopyDesc(CopyDesc* c) {
  int out = 0;
  for (int d = 0; d < c->rank; ++d) {
    if (c->extent[d] == 1) continue;
    c->extent[out] = c->extent[d];
    c->src_stride[out] = c->src_stride[d];
    c->dst_stride[out] = c->dst_stride[d];
    ++out;
  }
  c->rank = out;
  int w = 0;
  for (int d = 1; d < c->rank; ++d) {
    if (c->src_stride[w] == c->extent[d] * c->src_stride[d] && c->dst_stride[w] == c->extent[d] * c->dst_stride[d]) {
      c->extent[w] *= c->extent[d];  // merge d into w (w is the outer one)
      c->src_stride[w] = c->src_stride[d];
      c->dst_stride[w] = c->dst_stride[d];
    } else {
      ++w;
      c->extent[w] = c->extent[d];
      c->src_stride[w] = c->src_stride[d];
      c->dst_stride[w] = c->dst_stride[d];
    }
  }
  if (c->rank > 0) c->rank = w + 1;
}

// Runs one descriptor on the host (the reference executor).
inline void RunCopyDescOnHost(const CopyDesc& c) {
  const int inner = c.rank > 0 ? c.rank - 1 : -1;
  const int64_t run = inner >= 0 ? c.extent[inner] : 1;
  const int64_t ss = inner >= 0 ? c.src_stride[inner] : 1;
  const int64_t ds = inner >= 0 ? c.dst_stride[inner] : 1;
  int64_t outer = 1;
  for (int d = 0; d < inner; ++d) outer *= c.extent[d];
  for (int64_t o = 0; o < outer; ++o) {
    int64_t so = 0, dof = 0, rem = o;
    for (int d = inner - 1; d >= 0; --d) {
      const int64_t i = rem % c.extent[d];
      rem /= c.extent[d];
      so += i * c.src_stride[d];
      dof += i * c.dst_stride[d];
    }
    char* dst = c.dst + dof * c.dst_item;
    if (c.src == nullptr) {
      if (ds == 1) {
        std::memset(dst, 0, static_cast<size_t>(run) * c.dst_item);
      } else {
        for (int64_t i = 0; i < run; ++i) std::memset(dst + i * ds * c.dst_item, 0, c.dst_item);
      }
      continue;
    }
    const char* src = c.src + so * c.src_item;
    if (c.is_cast()) {
      const auto sk = static_cast<cast::FloatKind>(c.src_kind);
      const auto dk = static_cast<cast::FloatKind>(c.dst_kind);
      for (int64_t i = 0; i < run; ++i) {
        cast::StoreFromFloat(dst + i * ds * c.dst_item, dk, cast::LoadAsFloat(src + i * ss * c.src_item, sk));
      }
    } else if (ss == 1 && ds == 1) {
      std::memcpy(dst, src, static_cast<size_t>(run) * c.src_item);
    } else {
      for (int64_t i = 0; i < run; ++i) std::memcpy(dst + i * ds * c.dst_item, src + i * ss * c.src_item, c.src_item);
    }
  }
}

}  // namespace shardcast

#endif  // SHARDCAST_KERNELS_COPY_DESC_H_
