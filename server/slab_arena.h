// SlabArena: the GPU allocations that requests' cut shards live in, kept for the service's life.
//
// A CUDA IPC client maps the allocation its shards lie in; mapping and unmapping one per receive
// costs milliseconds (cudaIpcOpenMemHandle + cudaIpcCloseMemHandle, about 2.6 ms for a 300 MB
// request on an H200), and an exported allocation may not be freed while a client still maps it
// (undefined behaviour in CUDA IPC). So a device loader rank cuts requests into ranges of a few
// large blocks that are never freed before the arena: clients map each block once and keep the
// mapping (like the tensors' slab), and a range a request gave back is reused by the next one.
// A range is read only while a lease pins its request, so reuse never changes bytes under a
// receive. The blocks stay within `capacity` (the budget's room for shards); when no range fits
// and no block can be added, Allocate says so.
// Blocks are never given back before exit: their free space counts as held memory.
// Pure: the blocks come from a callback (a MemorySpace's Allocate); no CUDA here.
#ifndef SHARDCAST_SERVER_SLAB_ARENA_H_
#define SHARDCAST_SERVER_SLAB_ARENA_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "server/memory_space.h"

namespace shardcast {

class SlabArena;

// One range of an arena's block: move-only; gives the range back when destroyed (the block
// stays). Valid after its arena is destroyed (the blocks live until the last range is gone).
class ArenaSlab {
 public:
  ArenaSlab() = default;
  ArenaSlab(ArenaSlab&& other) noexcept { *this = std::move(other); }
  ArenaSlab& operator=(ArenaSlab&& other) noexcept;
  ArenaSlab(const ArenaSlab&) = delete;
  ArenaSlab& operator=(const ArenaSlab&) = delete;
  ~ArenaSlab() { Reset(); }

  char* data() const { return data_; }
  uint64_t size() const { return size_; }
  // The start of the block's allocation (what a CUDA IPC handle names), and data()'s offset in it.
  const void* block_base() const { return block_base_; }
  explicit operator bool() const { return data_ != nullptr; }
  void Reset();

 private:
  friend class SlabArena;
  struct State;
  std::shared_ptr<State> state_;
  size_t block_ = 0;
  uint64_t offset_ = 0;
  uint64_t size_ = 0;
  char* data_ = nullptr;
  const void* block_base_ = nullptr;
};

class SlabArena {
 public:
  using AllocateBlock = std::function<absl::StatusOr<Buffer>(uint64_t bytes)>;
  // `capacity`: the most the blocks may add up to (0: no limit); `min_block`: the smallest block
  // added (a larger request gets a block of its own size, rounded to kSlabAlign; less room left
  // than `min_block` gives a block of what is left).
  SlabArena(AllocateBlock allocate, uint64_t capacity, uint64_t min_block);

  // A range of at least `bytes` (rounded up to kSlabAlign; 0 counts as kSlabAlign), from the
  // smallest free range that fits, else from a new block. ResourceExhausted when none fits and a
  // new block would pass the capacity; the block allocator's error when it fails.
  absl::StatusOr<ArenaSlab> Allocate(uint64_t bytes);

  uint64_t block_bytes() const;  // what the blocks add up to
  uint64_t used_bytes() const;   // what live ranges hold
  uint64_t free_bytes() const;   // block_bytes() - used_bytes(), read together
  size_t block_count() const;

 private:
  std::shared_ptr<ArenaSlab::State> state_;
  AllocateBlock allocate_;
  uint64_t capacity_;
  uint64_t min_block_;
};

}  // namespace shardcast

#endif  // SHARDCAST_SERVER_SLAB_ARENA_H_
