// TensorLoader: reads the tensors a loader rank owns, once, into one allocation of its
// MemorySpace (one CUDA IPC handle covers them all), and hands out where each one lives. Host
// memory: read straight into place, its fresh pages faulted in by a thread of their own ahead of
// the reads. GPU: through two staging buffers of host memory, one read while the other is copied
// up; a tensor larger than a buffer goes in dim-0 slabs (contiguous in the tensor). It opens nothing itself. Progress (done_bytes) counts
// payload bytes only, after each batch: host reads go in batches of about `staging_bytes` (whole
// tensors; one larger than that is a batch alone), so that progress moves during a long load.
#ifndef SHARDCAST_SERVER_TENSOR_LOADER_H_
#define SHARDCAST_SERVER_TENSOR_LOADER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "absl/status/status.h"
#include "checkpoint/reader.h"
#include "server/startup_timeline.h"
#include "common/box.h"
#include "server/memory_space.h"

namespace shardcast {

class TensorLoader {
 public:
  // `reader` and `memory` must outlive the loader; `staging_bytes` is the size of each of the two
  // staging buffers of a device space.
  TensorLoader(CheckpointReader* reader, MemorySpace* memory, uint64_t staging_bytes);

  // The entries of `selected` that `owners` (one per entry) gives to `rank`.
  static std::vector<const TensorEntry*> OwnedBy(const std::vector<const TensorEntry*>& selected,
                                                 const std::vector<int>& owners, int rank);
  // The sum of the entries' bytes.
  static uint64_t TotalBytes(const std::vector<const TensorEntry*>& entries);

  // Reads `owned` into the memory space. Call once. Adds its steps to `timeline` (may be null) as a lane of their own.
  absl::Status Load(const std::vector<const TensorEntry*>& owned, StartupTimeline* timeline = nullptr);

  // Where a loaded tensor lives (nullptr if it was not loaded here).
  void* data(const TensorEntry* tensor) const;
  // The one allocation that holds every loaded tensor.
  const void* allocation() const { return slab_.data(); }
  // Payload bytes of owned tensors read so far (never more than TotalBytes(owned)).
  uint64_t done_bytes() const { return done_bytes_.load(); }
  // Called (on the loading thread) with done_bytes() after each batch. Set before Load().
  void set_on_progress(std::function<void(uint64_t)> on_progress) { on_progress_ = std::move(on_progress); }

 private:
  // A part of a tensor that goes through a staging buffer in one piece.
  struct Piece {
    const TensorEntry* tensor;
    Box box;
    uint64_t dst_offset, bytes;
  };
  absl::Status AllocateSlab(const std::vector<const TensorEntry*>& owned);
  absl::Status ReadIntoHost(const std::vector<const TensorEntry*>& owned);
  absl::Status ReadThroughStaging(const std::vector<const TensorEntry*>& owned, StartupTimeline::Lane* lane);
  absl::StatusOr<std::vector<Piece>> CutPieces(const std::vector<const TensorEntry*>& owned) const;
  // Reads pieces from `*next` into `staging` while the previous batch is copied up, then queues
  // the copy of this batch; advances `*next` past the pieces that fit.
  absl::Status StageBatch(const std::vector<Piece>& pieces, size_t* next, const Buffer& staging);
  void AddDone(uint64_t bytes);

  CheckpointReader* reader_;
  MemorySpace* memory_;
  const uint64_t staging_bytes_;
  Buffer slab_;
  std::map<const TensorEntry*, void*> tensors_;
  std::atomic<uint64_t> done_bytes_{0};
  std::function<void(uint64_t)> on_progress_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_TENSOR_LOADER_H_
