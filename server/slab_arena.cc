// SlabArena: best-fit ranges of blocks kept until the arena and its last range are gone.
#include "server/slab_arena.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shardcast {

struct ArenaSlab::State {
  struct Block {
    Buffer buffer;
    std::map<uint64_t, uint64_t> free;  // offset -> size, coalesced
  };
  mutable std::mutex mu;
  std::vector<Block> blocks;  // guarded by mu; only ever appended to
  uint64_t block_bytes = 0;   // guarded by mu
  uint64_t used_bytes = 0;    // guarded by mu

  // Takes `size` bytes from the smallest free range that holds them; false if none does.
  bool TakeBestFit(uint64_t size, size_t* block, uint64_t* offset);
  void Give(size_t block, uint64_t offset, uint64_t size);
};

bool ArenaSlab::State::TakeBestFit(uint64_t size, size_t* block, uint64_t* offset) {
  bool found = false;
  uint64_t best = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    for (const auto& [off, n] : blocks[b].free) {
      if (n >= size && (!found || n < best)) {
        found = true;
        best = n;
        *block = b;
        *offset = off;
      }
    }
  }
  if (!found) return false;
  std::map<uint64_t, uint64_t>& free = blocks[*block].free;
  free.erase(*offset);
  if (best > size) free.emplace(*offset + size, best - size);
  used_bytes += size;
  return true;
}

void ArenaSlab::State::Give(size_t block, uint64_t offset, uint64_t size) {
  std::map<uint64_t, uint64_t>& free = blocks[block].free;
  auto next = free.lower_bound(offset);
  if (next != free.end() && offset + size == next->first) {  // join the range after
    size += next->second;
    next = free.erase(next);
  }
  if (next != free.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {  // join the range before
      offset = prev->first;
      size += prev->second;
      free.erase(prev);
    }
  }
  free.emplace(offset, size);
}

ArenaSlab& ArenaSlab::operator=(ArenaSlab&& other) noexcept {
  if (this != &other) {
    Reset();
    state_ = std::move(other.state_);
    block_ = other.block_;
    offset_ = other.offset_;
    size_ = other.size_;
    data_ = std::exchange(other.data_, nullptr);
    block_base_ = std::exchange(other.block_base_, nullptr);
    other.size_ = 0;
  }
  return *this;
}

void ArenaSlab::Reset() {
  if (state_ != nullptr) {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->used_bytes -= size_;
    state_->Give(block_, offset_, size_);
  }
  state_.reset();
  data_ = nullptr;
  block_base_ = nullptr;
  size_ = 0;
}

SlabArena::SlabArena(AllocateBlock allocate, uint64_t capacity, uint64_t min_block)
    : state_(std::make_shared<ArenaSlab::State>()),
      allocate_(std::move(allocate)),
      capacity_(capacity),
      min_block_(min_block) {}

absl::StatusOr<ArenaSlab> SlabArena::Allocate(uint64_t bytes) {
  const uint64_t size = bytes == 0 ? kSlabAlign : (bytes + kSlabAlign - 1) / kSlabAlign * kSlabAlign;
  if (size < bytes) return absl::ResourceExhaustedError("slab size overflows");
  std::lock_guard<std::mutex> lock(state_->mu);
  size_t block = 0;
  uint64_t offset = 0;
  if (!state_->TakeBestFit(size, &block, &offset)) {
    const uint64_t held = state_->block_bytes;
    uint64_t block_size = std::max(size, (min_block_ + kSlabAlign - 1) / kSlabAlign * kSlabAlign);
    if (capacity_ != 0 && held < capacity_) {  // less room left than a block: a block of what is left
      block_size = std::max(size, std::min(block_size, (capacity_ - held) / kSlabAlign * kSlabAlign));
    }
    if (capacity_ != 0 && (block_size > capacity_ || held > capacity_ - block_size)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the GPU's shard blocks hold ", held, " bytes in ", state_->blocks.size(), " blocks (", state_->used_bytes,
          " in use, no free range of ", size, "); a new block of ", block_size, " would pass the room for shards, ",
          capacity_));
    }
    absl::StatusOr<Buffer> buffer = allocate_(block_size);
    if (!buffer.ok()) return buffer.status();
    state_->blocks.push_back(ArenaSlab::State::Block{*std::move(buffer), {{0, block_size}}});
    state_->block_bytes += block_size;
    block = state_->blocks.size() - 1;
    const bool taken = state_->TakeBestFit(size, &block, &offset);
    if (!taken) return absl::InternalError("a new arena block does not hold its first range");
  }
  ArenaSlab slab;
  slab.state_ = state_;
  slab.block_ = block;
  slab.offset_ = offset;
  slab.size_ = size;
  slab.block_base_ = state_->blocks[block].buffer.data();
  slab.data_ = state_->blocks[block].buffer.bytes() + offset;
  return slab;
}

uint64_t SlabArena::block_bytes() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->block_bytes;
}

uint64_t SlabArena::free_bytes() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->block_bytes - state_->used_bytes;
}

uint64_t SlabArena::used_bytes() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->used_bytes;
}

size_t SlabArena::block_count() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->blocks.size();
}

}  // namespace shardcast
