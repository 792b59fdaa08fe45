#include "checkpoint/reader.h"

#include <zstd.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "checkpoint/metadata_parser.h"
#include "checkpoint/region_copy.h"
#include "checkpoint/safetensors_folder.h"
#include "common/crc32.h"
#include "common/status_macros.h"

namespace shardcast {
namespace {

// zstd cannot expand more than this: an RLE block of 4 bytes (3 of header) decodes to at most
// 128 KiB (32768x); twice that leaves room for frame headers. A chunk whose bytes exceed its
// compressed item times this is refused before anything is read or allocated.
constexpr uint64_t kMaxZstdRatio = 1ull << 16;
// What a torch.save record holds besides its storage: ZIP headers, data.pkl, byteorder,
// version, serialization id, 64-byte alignment. A few KiB in practice.
constexpr uint64_t kRecordOverhead = 1ull << 20;
// Direct reads that compute a CRC-32 go in slices of this size, checksummed while in cache.
constexpr uint64_t kCrcSlice = 1ull << 20;
// A zstd-compressed bytes entry (no chunk to size it) decodes to at most this.
constexpr uint64_t kMaxDecodedBytesEntry = 1ull << 30;

// Counts the bytes a RecordSource fetches.
class CountingSource : public RecordSource {
 public:
  CountingSource(const RecordSource& base, std::atomic<uint64_t>* counter) : base_(base), counter_(counter) {}
  uint64_t size() const override { return base_.size(); }
  absl::Status Read(uint64_t offset, uint64_t n, char* out) const override {
    *counter_ += n;
    return base_.Read(offset, n, out);
  }

 private:
  const RecordSource& base_;
  std::atomic<uint64_t>* counter_;
};

// Decodes a zstd stream (concatenated frames allowed) into at most `max_out` bytes. A frame that
// declares a larger content size is refused before decoding; output past `max_out` (a bomb, or
// a frame without a declared size) stops the decoder at once: memory stays within
// max_out + one decoder block.
absl::StatusOr<std::string> ZstdDecode(absl::string_view in, uint64_t max_out, const std::string& where) {
  const unsigned long long declared = ZSTD_getFrameContentSize(in.data(), in.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) {
    return absl::DataLossError(absl::StrCat(where, ": zstd: not a zstd frame (bad magic or header)"));
  }
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared > max_out) {
    return absl::DataLossError(absl::StrCat(where, ": zstd frame declares ", declared,
                                            " decoded bytes; at most ", max_out, " are plausible for this item"));
  }
  std::unique_ptr<ZSTD_DStream, size_t (*)(ZSTD_DStream*)> ds(ZSTD_createDStream(), ZSTD_freeDStream);
  if (ds == nullptr) return absl::ResourceExhaustedError("zstd: cannot create a decoder");
  ZSTD_initDStream(ds.get());
  std::string out;
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN) out.reserve(declared);
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::string chunk(ZSTD_DStreamOutSize(), '\0');
  size_t ret = 1;
  auto step = [&]() -> absl::Status {
    ZSTD_outBuffer ob{chunk.data(), chunk.size(), 0};
    ret = ZSTD_decompressStream(ds.get(), &ob, &ib);
    if (ZSTD_isError(ret)) return absl::DataLossError(absl::StrCat(where, ": zstd: ", ZSTD_getErrorName(ret)));
    if (out.size() + ob.pos > max_out) {
      return absl::DataLossError(absl::StrCat(where, ": zstd output exceeds ", max_out,
                                              " bytes, the most this item can hold (corrupt or a decompression bomb)"));
    }
    out.append(chunk.data(), ob.pos);
    if (ob.pos == 0 && ret != 0 && ib.pos == ib.size) {
      return absl::DataLossError(absl::StrCat(where, ": zstd stream is truncated"));
    }
    return absl::OkStatus();
  };
  while (ib.pos < ib.size) {
    SC_RETURN_IF_ERROR(step());
    if (ret == 0 && ib.pos < ib.size) ZSTD_initDStream(ds.get());  // concatenated frames
  }
  while (ret != 0) SC_RETURN_IF_ERROR(step());  // flush what the decoder still holds
  return out;
}

uint64_t SaturatingMul(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

// Bytes of one stored chunk (ParseMetadata checked that the tensor's byte size fits int64).
uint64_t ChunkBytes(const TensorEntry& t, const StoredChunk& c) {
  uint64_t n = ItemSize(t.dtype);
  for (int64_t s : c.box.sizes) n *= static_cast<uint64_t>(s);
  return n;
}

// True if `region`'s elements are stored densely in C order within the record.
bool DenseInSource(const Shape& strides, const Box& region) {
  int64_t expect = 1;
  for (size_t d = region.rank(); d-- > 0;) {
    if (region.sizes[d] != 1 && strides[d] != expect) return false;
    expect *= region.sizes[d];
  }
  return true;
}

// A raw item (safetensors) described as a record: the chunk's elements, dense, little-endian,
// from the item's first byte; no stored CRC-32 (safetensors has none).
TensorRecord RawRecord(const TensorEntry& t, const StoredChunk& c) {
  TensorRecord r;
  r.dtype = t.dtype;
  r.shape = c.box.sizes;
  r.strides.assign(r.shape.size(), 1);
  for (size_t d = r.shape.size(); d-- > 1;) r.strides[d - 1] = r.strides[d] * r.shape[d];
  r.data_length = c.location.length;
  return r;
}

// The location lies inside its file (opening it: a non-regular file is refused here).
absl::Status CheckLocation(CheckpointFiles& files, const StorageLocation& loc, absl::string_view key) {
  absl::StatusOr<uint64_t> size = files.FileSize(loc.relative_path);
  if (!size.ok()) return absl::Status(size.status().code(), absl::StrCat("key '", key, "': ", size.status().message()));
  if (loc.offset > *size || loc.length > *size - loc.offset) {
    return absl::OutOfRangeError(absl::StrCat("key '", key, "': ", files.dir(), "/", loc.relative_path, ": item [",
                                              loc.offset, ", +", loc.length, ") passes the end of the file (", *size,
                                              " bytes; truncated?)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckStoredSizes(const CheckpointMetadata& md, CheckpointFiles& files) {
  for (const TensorEntry& t : md.tensors) {
    for (const StoredChunk& c : t.chunks) {
      const uint64_t need = ChunkBytes(t, c);
      if (need == 0) continue;  // an empty chunk is never read (nothing intersects it)
      SC_RETURN_IF_ERROR(CheckLocation(files, c.location, t.key));
      const bool compressed = !c.location.transforms.empty();
      const uint64_t most = compressed ? SaturatingMul(c.location.length, kMaxZstdRatio) : c.location.length;
      if (need > most) {
        return absl::DataLossError(absl::StrCat(
            "key '", t.key, "': chunk ", BoxToString(c.box), " needs ", need, " bytes but its ",
            compressed ? "zstd-compressed " : "", "record ", files.dir(), "/", c.location.relative_path, " @",
            c.location.offset, "+", c.location.length, " can hold at most ", most));
      }
    }
  }
  for (const BytesEntry& b : md.bytes_entries) SC_RETURN_IF_ERROR(CheckLocation(files, b.location, b.key));
  return absl::OkStatus();
}

CheckpointReader::CheckpointReader(ResolvedCheckpoint resolved, CheckpointMetadata metadata,
                                   std::unique_ptr<CheckpointFiles> files, ReaderOptions options)
    : resolved_(std::move(resolved)),
      metadata_(std::move(metadata)),
      files_(std::move(files)),
      options_(options),
      pool_(std::make_unique<ThreadPool>(std::max(1, options.threads))) {}

absl::StatusOr<std::unique_ptr<CheckpointReader>> CheckpointReader::Open(const std::string& path,
                                                                         ReaderOptions options) {
  if (options.block_size < 4096) return absl::InvalidArgumentError("block size must be at least 4096 bytes");
  SC_ASSIGN_OR_RETURN(ResolvedCheckpoint resolved, ResolveCheckpoint(path, options.iteration));
  SC_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointFiles> files, CheckpointFiles::Open(resolved.dir, options.storage));
  CheckpointMetadata md;
  if (resolved.format == CheckpointFormat::kSafetensors) {
    SC_ASSIGN_OR_RETURN(md, LoadSafetensorsMetadata(*files, resolved));
  } else {
    SC_ASSIGN_OR_RETURN(std::string bytes, files->ReadFile(".metadata", options.max_metadata_bytes));
    SC_ASSIGN_OR_RETURN(md, ParseMetadata(bytes, files->dir() + "/.metadata"));
  }
  SC_RETURN_IF_ERROR(CheckStoredSizes(md, *files));
  return std::unique_ptr<CheckpointReader>(
      new CheckpointReader(std::move(resolved), std::move(md), std::move(files), options));
}

std::vector<const TensorEntry*> CheckpointReader::Select(const std::string& prefix) const {
  std::vector<const TensorEntry*> out;
  for (const TensorEntry& t : metadata_.tensors) {
    if (absl::StartsWith(t.key, prefix)) out.push_back(&t);
  }
  return out;
}

std::string CheckpointReader::Where(const StorageLocation& loc) const {
  return absl::StrCat(files_->dir(), "/", loc.relative_path, " @", loc.offset, "+", loc.length);
}

absl::StatusOr<std::string> CheckpointReader::ReadDecoded(const StorageLocation& loc, uint64_t max_decoded) {
  // The location was checked against the file's size at Open: this allocation is file-bounded.
  SC_ASSIGN_OR_RETURN(uint64_t file_size, files_->FileSize(loc.relative_path));
  if (loc.offset > file_size || loc.length > file_size - loc.offset) {
    return absl::OutOfRangeError(absl::StrCat(Where(loc), " passes the end of the file (", file_size, " bytes)"));
  }
  std::string raw(loc.length, '\0');
  SC_RETURN_IF_ERROR(files_->ReadAt(loc.relative_path, loc.offset, loc.length, raw.data()));
  bytes_read_ += loc.length;
  for (const std::string& t : loc.transforms) {
    if (absl::StartsWith(t, "stream.zstd")) {
      SC_ASSIGN_OR_RETURN(raw, ZstdDecode(raw, max_decoded, Where(loc)));
    } else {
      return absl::UnimplementedError(absl::StrCat(Where(loc), ": unsupported stream transform '", t, "'"));
    }
  }
  return raw;
}

absl::StatusOr<CheckpointReader::ParsedChunk> CheckpointReader::ParseChunk(const TensorEntry& t,
                                                                         const StoredChunk& c) {
  const std::string where = absl::StrCat(Where(c.location), " (key '", t.key, "', chunk ", BoxToString(c.box), ")");
  ParsedChunk pc;
  if (c.location.format == ItemFormat::kRaw) {
    pc.record = RawRecord(t, c);
    return pc;
  }
  if (!c.location.transforms.empty()) {
    // A record holds the chunk's bytes plus small headers: more is a corrupt item or a bomb.
    SC_ASSIGN_OR_RETURN(std::string decoded, ReadDecoded(c.location, ChunkBytes(t, c) + kRecordOverhead));
    pc.decoded = std::make_shared<const std::string>(std::move(decoded));
    StringRecordSource src(*pc.decoded);
    SC_ASSIGN_OR_RETURN(pc.record, ParseTensorRecord(src, where));
    // The ZIP CRC covers the entry's stored bytes, which are inside the zstd stream (zstd wraps
    // the whole torch.save archive): check it over the decoded payload, held whole in memory.
    if (options_.verify_storage_crc && pc.record.data_length > 0) {
      const char* payload = pc.decoded->data() + pc.record.data_offset;
      SC_RETURN_IF_ERROR(CheckCrc(t, c, pc.record, Crc32(payload, pc.record.data_length)));
    }
  } else {
    StoredItemSource item(files_.get(), c.location);
    CountingSource src(item, &bytes_read_);
    SC_ASSIGN_OR_RETURN(pc.record, ParseTensorRecord(src, where));
  }
  if (pc.record.dtype != t.dtype) {
    return absl::DataLossError(absl::StrCat(where, ": record holds ", DTypeName(pc.record.dtype),
                                            " but .metadata says ", DTypeName(t.dtype)));
  }
  if (pc.record.shape != c.box.sizes) {
    return absl::DataLossError(absl::StrCat(where, ": record holds shape ", ShapeToString(pc.record.shape),
                                            " but .metadata says ", ShapeToString(c.box.sizes)));
  }
  return pc;
}

absl::Status CheckpointReader::CrcMismatch(const TensorEntry& t, const StoredChunk& c, const TensorRecord& rec,
                                           uint32_t crc) const {
  return absl::DataLossError(absl::StrFormat(
      "key '%s': %s (chunk %s): the payload's CRC-32 is 0x%08x but its torch.save record stores 0x%08x: the "
      "file is corrupt (--no-verify-storage-crc skips this check)",
      t.key, Where(c.location), BoxToString(c.box), crc, rec.data_crc32));
}

absl::Status CheckpointReader::CheckCrc(const TensorEntry& t, const StoredChunk& c, const TensorRecord& rec,
                                        uint32_t crc) {
  return ExtendCrc(t, c, rec, 0, rec.data_length, crc);
}

absl::Status CheckpointReader::ExtendCrc(const TensorEntry& t, const StoredChunk& c, const TensorRecord& rec,
                                         uint64_t start, uint64_t length, uint32_t crc) {
  std::lock_guard<std::mutex> lock(mu_);
  CrcProgress& p = crc_progress_[&c];
  if (rec.data_crc32 == 0) {
    p.absent = true;
    return absl::OkStatus();
  }
  if (p.verified) return absl::OkStatus();
  if (start == 0 && length >= p.prefix) {
    p.prefix = length;  // (re)starts the prefix
    p.crc = crc;
  } else if (start == p.prefix) {
    p.crc = Crc32Combine(p.crc, crc, length);
    p.prefix += length;
  } else {
    return absl::OkStatus();  // a gap or a re-read: the prefix stays as it is
  }
  if (p.prefix < rec.data_length) return absl::OkStatus();
  if (p.crc != rec.data_crc32) return CrcMismatch(t, c, rec, p.crc);
  p.verified = true;
  return absl::OkStatus();
}

ReaderStats CheckpointReader::stats() const {
  ReaderStats s;
  s.bytes_read = bytes_read_.load();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [chunk, p] : crc_progress_) {
    if (p.absent) {
      ++s.crc_absent_records;
    } else if (p.verified) {
      ++s.crc_verified_records;
    } else {
      ++s.crc_unverified_partial_records;
    }
  }
  return s;
}

const StoredChunk* CheckpointReader::ChunkHolding(const TensorEntry& t, const Box& box) {
  for (int64_t x : box.sizes) {
    if (x <= 0) return nullptr;  // an empty box intersects nothing: leave it to the scan
  }
  size_t hint;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = chunk_hint_.find(&t);
    if (it == chunk_hint_.end()) return nullptr;
    hint = it->second;
  }
  // The chunk that held the previous box of this tensor, or the next one (callers such as the
  // reshard planner's copies walk the chunks in order). Chunks tile the tensor, so a chunk that
  // contains the box is the only one it intersects.
  for (size_t i : {hint, hint + 1}) {
    if (i < t.chunks.size() && Contains(t.chunks[i].box, box)) {
      std::lock_guard<std::mutex> lock(mu_);
      chunk_hint_[&t] = i;
      return &t.chunks[i];
    }
  }
  return nullptr;
}

// A part of one BoxRead that lies in one stored chunk.
struct CheckpointReader::Piece {
  const BoxRead* read;
  const StoredChunk* chunk;
  Box region;
};

// One unit of work on the pool: a block read straight into the destination (`direct`), or the
// span of the payload holding a piece, read (or taken from the decoded record) and scattered.
struct CheckpointReader::ReadJob {
  const Piece* piece;
  const ParsedChunk* pc;
  bool direct;
  uint64_t file_offset;  // direct: where this block starts in the file
  uint64_t length;       // direct: block length
  char* dst;             // direct: where it lands
  uint32_t* crc;         // where the CRC-32 of the bytes this job reads goes (nullptr: none)
};

// Per piece of an uncompressed record: the CRC-32 of each block it reads, in order. Joined once
// every block has been read, they extend the record's verified prefix (ExtendCrc), so a payload
// read whole, or front to back over several pieces or calls, is checked.
struct CheckpointReader::PieceCrc {
  const Piece* piece;
  const ParsedChunk* pc;
  uint64_t start;  // in the payload, bytes
  uint64_t total;
  std::vector<uint32_t> blocks;
};

absl::Status CheckpointReader::Read(const std::vector<BoxRead>& reads) {
  std::vector<Piece> pieces;
  for (const BoxRead& r : reads) SC_RETURN_IF_ERROR(AddPieces(r, &pieces));
  SC_RETURN_IF_ERROR(ParseChunksOf(pieces));
  std::deque<PieceCrc> piece_crcs;
  std::vector<ReadJob> jobs;
  for (const Piece& p : pieces) AddJobs(p, &jobs, &piece_crcs);
  // Largest first keeps the pool busy to the end.
  std::stable_sort(jobs.begin(), jobs.end(), [](const ReadJob& a, const ReadJob& b) { return a.length > b.length; });
  SC_RETURN_IF_ERROR(ParallelFor(pool_.get(), jobs.size(), [&](size_t i) -> absl::Status {
    return jobs[i].direct ? ReadDirect(jobs[i]) : ReadAndCopy(jobs[i]);
  }));
  return VerifyPieceCrcs(piece_crcs);
}

absl::Status CheckpointReader::AddPieces(const BoxRead& r, std::vector<Piece>* pieces) {
  const TensorEntry& t = *r.tensor;
  if (r.box.rank() != t.shape.size() || r.box.offsets.size() != t.shape.size() || !Contains(FullBox(t.shape), r.box)) {
    return absl::InvalidArgumentError(absl::StrCat("key '", t.key, "': box ", BoxToString(r.box),
                                                   " is not inside the shape ", ShapeToString(t.shape)));
  }
  const StoredChunk* named = r.chunk >= 0 && static_cast<size_t>(r.chunk) < t.chunks.size() ? &t.chunks[r.chunk]
                                                                                             : nullptr;
  if (named != nullptr && !Contains(named->box, r.box)) named = nullptr;  // a wrong hint: look it up
  for (int64_t x : r.box.sizes) {
    if (x <= 0) named = nullptr;  // an empty box intersects nothing
  }
  if (const StoredChunk* c = named != nullptr ? named : ChunkHolding(t, r.box)) {  // in one chunk: no scan
    pieces->push_back(Piece{&r, c, r.box});
    return absl::OkStatus();
  }
  const size_t first = pieces->size();
  for (const StoredChunk& c : t.chunks) {
    std::optional<Box> region = Intersect(c.box, r.box);
    if (region) pieces->push_back(Piece{&r, &c, *region});
  }
  if (pieces->size() == first + 1 && pieces->back().region == r.box) {
    std::lock_guard<std::mutex> lock(mu_);
    chunk_hint_[&t] = static_cast<size_t>(pieces->back().chunk - t.chunks.data());
  }
  return absl::OkStatus();
}

absl::Status CheckpointReader::ParseChunksOf(const std::vector<Piece>& pieces) {
  // Parse each chunk's record once (cached across calls).
  std::vector<std::pair<const TensorEntry*, const StoredChunk*>> needed;
  for (const Piece& p : pieces) needed.emplace_back(p.read->tensor, p.chunk);
  std::sort(needed.begin(), needed.end());
  needed.erase(std::unique(needed.begin(), needed.end()), needed.end());
  std::vector<std::pair<const TensorEntry*, const StoredChunk*>> to_parse;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& n : needed) {
      if (!parsed_.count(n.second)) to_parse.push_back(n);
    }
  }
  return ParallelFor(pool_.get(), to_parse.size(), [&](size_t i) -> absl::Status {
    SC_ASSIGN_OR_RETURN(ParsedChunk pc, ParseChunk(*to_parse[i].first, *to_parse[i].second));
    std::lock_guard<std::mutex> lock(mu_);
    parsed_.emplace(to_parse[i].second, std::move(pc));
    return absl::OkStatus();
  });
}

void CheckpointReader::AddJobs(const Piece& p, std::vector<ReadJob>* jobs, std::deque<PieceCrc>* piece_crcs) {
  const ParsedChunk* pc;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pc = &parsed_.at(p.chunk);
  }
  const TensorRecord& rec = pc->record;
  const size_t item = ItemSize(p.read->tensor->dtype);
  const StridedChunk sc{&p.chunk->box, &rec.strides, rec.storage_offset};
  const ElementSpan span = SpanOfRegion(sc, p.region);
  const uint64_t total = static_cast<uint64_t>(span.last - span.first + 1) * item;
  const bool direct = pc->decoded == nullptr && !rec.big_endian && DenseInSource(rec.strides, p.region) &&
                      IsContiguousIn(p.read->box, p.region);
  const uint64_t blocks = direct ? (total + options_.block_size - 1) / options_.block_size : 1;
  // A zstd record was checked whole when it was decoded.
  PieceCrc* crcs = nullptr;
  if (options_.verify_storage_crc && pc->decoded == nullptr && rec.data_length > 0) {
    piece_crcs->push_back(PieceCrc{&p, pc, static_cast<uint64_t>(span.first) * item, total, {}});
    crcs = &piece_crcs->back();
    crcs->blocks.resize(blocks);
  }
  if (!direct) {
    jobs->push_back(ReadJob{&p, pc, false, 0, 0, nullptr, crcs ? &crcs->blocks[0] : nullptr});
    return;
  }
  const uint64_t begin = p.chunk->location.offset + rec.data_offset + static_cast<uint64_t>(span.first) * item;
  char* dst = p.read->dst + DenseOffset(p.read->box, p.region, item);
  for (uint64_t off = 0, b = 0; off < total; off += options_.block_size, ++b) {
    const uint64_t len = std::min<uint64_t>(options_.block_size, total - off);
    jobs->push_back(ReadJob{&p, pc, true, begin + off, len, dst + off, crcs ? &crcs->blocks[b] : nullptr});
  }
}

absl::Status CheckpointReader::ReadDirect(const ReadJob& j) {
  const Piece& p = *j.piece;
  // With a CRC to compute, read in slices small enough to be checksummed while they are still in
  // the CPU cache (a second pass over a 16 MiB block would come from DRAM).
  const uint64_t slice = j.crc != nullptr ? kCrcSlice : j.length;
  uint32_t crc = 0;
  for (uint64_t off = 0; off < j.length; off += slice) {
    const uint64_t len = std::min(slice, j.length - off);
    absl::Status s = files_->ReadAt(p.chunk->location.relative_path, j.file_offset + off, len, j.dst + off);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("key '", p.read->tensor->key, "': ", s.message()));
    if (j.crc != nullptr) crc = Crc32(j.dst + off, len, crc);
  }
  bytes_read_ += j.length;
  if (j.crc != nullptr) *j.crc = crc;
  return absl::OkStatus();
}

absl::Status CheckpointReader::ReadAndCopy(const ReadJob& j) {
  const Piece& p = *j.piece;
  const StorageLocation& loc = p.chunk->location;
  const TensorRecord& rec = j.pc->record;
  const size_t item = ItemSize(p.read->tensor->dtype);
  const StridedChunk sc{&p.chunk->box, &rec.strides, rec.storage_offset};
  const ElementSpan span = SpanOfRegion(sc, p.region);
  const uint64_t span_bytes = static_cast<uint64_t>(span.last - span.first + 1) * item;
  const uint64_t rel = rec.data_offset + static_cast<uint64_t>(span.first) * item;
  const char* src;
  std::string buf;
  if (j.pc->decoded != nullptr) {
    src = j.pc->decoded->data() + rel;
  } else {
    buf.resize(span_bytes);
    for (uint64_t off = 0; off < span_bytes; off += options_.block_size) {
      const uint64_t len = std::min<uint64_t>(options_.block_size, span_bytes - off);
      absl::Status s = files_->ReadAt(loc.relative_path, loc.offset + rel + off, len, buf.data() + off);
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat("key '", p.read->tensor->key, "': ", s.message()));
    }
    bytes_read_ += span_bytes;
    src = buf.data();
    if (j.crc != nullptr) *j.crc = Crc32(buf.data(), buf.size());
  }
  CopyRegion(sc, src, span.first, p.region, p.read->dst, p.read->box, item, rec.big_endian);
  return absl::OkStatus();
}

absl::Status CheckpointReader::VerifyPieceCrcs(const std::deque<PieceCrc>& piece_crcs) {
  // Join each piece's block CRCs (all blocks but the last are block_size long), then extend the
  // records' verified prefixes in payload order.
  const Crc32Shift block_shift(options_.block_size);
  std::vector<const PieceCrc*> order;
  for (const PieceCrc& pcrc : piece_crcs) order.push_back(&pcrc);
  std::sort(order.begin(), order.end(), [](const PieceCrc* a, const PieceCrc* b) {
    return std::tie(a->piece->chunk, a->start) < std::tie(b->piece->chunk, b->start);
  });
  for (const PieceCrc* pcrc : order) {
    uint32_t crc = pcrc->blocks[0];
    for (size_t b = 1; b < pcrc->blocks.size(); ++b) {
      const uint64_t len = std::min<uint64_t>(options_.block_size, pcrc->total - b * options_.block_size);
      crc = len == options_.block_size ? block_shift.Combine(crc, pcrc->blocks[b])
                                       : Crc32Combine(crc, pcrc->blocks[b], len);
    }
    SC_RETURN_IF_ERROR(
        ExtendCrc(*pcrc->piece->read->tensor, *pcrc->piece->chunk, pcrc->pc->record, pcrc->start, pcrc->total, crc));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CheckpointReader::ReadBytesEntry(const BytesEntry& entry) {
  return ReadDecoded(entry.location, std::min(kMaxDecodedBytesEntry, SaturatingMul(entry.location.length, kMaxZstdRatio)));
}

}  // namespace shardcast
