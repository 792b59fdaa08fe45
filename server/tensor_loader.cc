#include "server/tensor_loader.h"

#include <sys/mman.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace shardcast {

TensorLoader::TensorLoader(CheckpointReader* reader, MemorySpace* memory, uint64_t staging_bytes)
    : reader_(reader), memory_(memory), staging_bytes_(staging_bytes) {}

std::vector<const TensorEntry*> TensorLoader::OwnedBy(const std::vector<const TensorEntry*>& selected,
                                                      const std::vector<int>& owners, int rank) {
  std::vector<const TensorEntry*> mine;
  for (size_t i = 0; i < selected.size(); ++i) {
    if (owners[i] == rank) mine.push_back(selected[i]);
  }
  return mine;
}

uint64_t TensorLoader::TotalBytes(const std::vector<const TensorEntry*>& entries) {
  uint64_t bytes = 0;
  for (const TensorEntry* t : entries) bytes += t->nbytes();
  return bytes;
}

void* TensorLoader::data(const TensorEntry* tensor) const {
  auto it = tensors_.find(tensor);
  return it == tensors_.end() ? nullptr : it->second;
}

namespace {

// Faults in fresh host memory on a thread of its own, front to back, so that the kernel's zeroing
// of new pages runs beside the reads instead of inside them (reading into a fresh 1.26 GB slab
// from the page cache spent 70% of its time in clear_page). MADV_POPULATE_WRITE (Linux 5.14)
// maps the pages without touching their contents, so a read that overtakes it loses nothing;
// on an older kernel it does nothing. Stops early when destroyed.
class PageFaulter {
 public:
  PageFaulter(void* data, size_t n) {
    if (data == nullptr || n == 0) return;
    thread_ = std::thread([this, data, n] {
      constexpr size_t kStep = 64u << 20;
      const uintptr_t page = 4096, begin = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
      const uintptr_t end = reinterpret_cast<uintptr_t>(data) + n;
      for (uintptr_t p = begin; p < end && !stop_.load(std::memory_order_relaxed); p += kStep) {
        if (::madvise(reinterpret_cast<void*>(p), std::min<uintptr_t>(kStep, end - p), MADV_POPULATE_WRITE) != 0) return;
      }
    });
  }
  ~PageFaulter() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  PageFaulter(const PageFaulter&) = delete;
  PageFaulter& operator=(const PageFaulter&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

absl::Status TensorLoader::Load(const std::vector<const TensorEntry*>& owned, StartupTimeline* timeline) {
  StartupTimeline::Lane lane(timeline);  // beside the main thread's start-up steps
  SC_RETURN_IF_ERROR(AllocateSlab(owned));
  lane.Mark("tensor allocation");
  if (memory_->is_device()) {
    SC_RETURN_IF_ERROR(ReadThroughStaging(owned, &lane));
  } else {
    PageFaulter ahead(slab_.data(), slab_.size());
    SC_RETURN_IF_ERROR(ReadIntoHost(owned));
  }
  lane.Mark("reads");
  return absl::OkStatus();
}

absl::Status TensorLoader::AllocateSlab(const std::vector<const TensorEntry*>& owned) {
  std::vector<uint64_t> sizes, offsets;
  for (const TensorEntry* t : owned) sizes.push_back(t->nbytes());
  SC_ASSIGN_OR_RETURN(slab_, memory_->Allocate(PackSlab(sizes, &offsets)));
  for (size_t i = 0; i < owned.size(); ++i) tensors_[owned[i]] = slab_.bytes() + offsets[i];
  return absl::OkStatus();
}

void TensorLoader::AddDone(uint64_t bytes) {
  const uint64_t done = done_bytes_.fetch_add(bytes) + bytes;
  if (on_progress_) on_progress_(done);
}

absl::Status TensorLoader::ReadIntoHost(const std::vector<const TensorEntry*>& owned) {
  // Batches of whole tensors up to staging_bytes_ (a larger tensor alone): each batch is one
  // parallel read, and progress moves between batches.
  size_t next = 0;
  while (next < owned.size()) {
    std::vector<BoxRead> reads;
    uint64_t bytes = 0;
    do {
      const TensorEntry* t = owned[next++];
      reads.push_back(BoxRead{t, FullBox(t->shape), static_cast<char*>(tensors_[t])});
      bytes += t->nbytes();
    } while (next < owned.size() && bytes + owned[next]->nbytes() <= staging_bytes_);
    SC_RETURN_IF_ERROR(reader_->Read(reads));
    AddDone(bytes);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TensorLoader::Piece>> TensorLoader::CutPieces(
    const std::vector<const TensorEntry*>& owned) const {
  const uint64_t cap = staging_bytes_;
  std::vector<Piece> pieces;
  for (const TensorEntry* t : owned) {
    if (t->nbytes() <= cap || t->shape.empty()) {
      pieces.push_back({t, FullBox(t->shape), 0, t->nbytes()});
      continue;
    }
    const uint64_t row = t->nbytes() / static_cast<uint64_t>(std::max<int64_t>(1, t->shape[0]));
    if (row > cap) return absl::ResourceExhaustedError(absl::StrCat("a row of '", t->key, "' exceeds the staging buffer"));
    const int64_t rows_per = static_cast<int64_t>(cap / row);
    for (int64_t r0 = 0; r0 < t->shape[0]; r0 += rows_per) {
      Box b = FullBox(t->shape);
      b.offsets[0] = r0;
      b.sizes[0] = std::min<int64_t>(rows_per, t->shape[0] - r0);
      pieces.push_back({t, b, static_cast<uint64_t>(r0) * row, static_cast<uint64_t>(b.sizes[0]) * row});
    }
  }
  return pieces;
}

absl::Status TensorLoader::StageBatch(const std::vector<Piece>& pieces, size_t* next, const Buffer& staging) {
  std::vector<BoxRead> reads;
  std::vector<const Piece*> batch;
  uint64_t used = 0;
  for (size_t& i = *next; i < pieces.size() && used + pieces[i].bytes <= staging_bytes_; ++i) {
    reads.push_back(BoxRead{pieces[i].tensor, pieces[i].box, staging.bytes() + used});
    batch.push_back(&pieces[i]);
    used += pieces[i].bytes;
  }
  SC_RETURN_IF_ERROR(reader_->Read(reads));  // overlaps the copy of the previous batch
  SC_RETURN_IF_ERROR(memory_->Synchronize());  // the other buffer is free again after this
  uint64_t off = 0;
  for (const Piece* p : batch) {
    SC_RETURN_IF_ERROR(memory_->CopyIn(static_cast<char*>(tensors_[p->tensor]) + p->dst_offset, staging.bytes() + off,
                                       p->bytes));
    off += p->bytes;
  }
  AddDone(used);
  return absl::OkStatus();
}

absl::Status TensorLoader::ReadThroughStaging(const std::vector<const TensorEntry*>& owned, StartupTimeline::Lane* lane) {
  Buffer staging[2];
  for (Buffer& b : staging) {
    SC_ASSIGN_OR_RETURN(b, memory_->AllocateStaging(staging_bytes_));
  }
  lane->Mark("staging buffers");
  // Pageable staging (server/cuda_memory_space.cc): its first touch runs beside the first reads.
  PageFaulter first(staging[0].data(), staging[0].size()), second(staging[1].data(), staging[1].size());
  SC_ASSIGN_OR_RETURN(const std::vector<Piece> pieces, CutPieces(owned));
  size_t next = 0;
  absl::Status s;
  for (int which = 0; s.ok() && next < pieces.size(); which ^= 1) s = StageBatch(pieces, &next, staging[which]);
  // The staging buffers are freed only once no copy reads them.
  absl::Status synced = memory_->Synchronize();
  return s.ok() ? synced : s;
}

}  // namespace shardcast
