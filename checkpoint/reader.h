// CheckpointReader: opens a DCP checkpoint (or safetensors: one raw chunk per tensor, see
// safetensors_header.h) and reads any box of any tensor, in parallel, reading only the byte
// ranges it needs.
//
//   SC_ASSIGN_OR_RETURN(auto reader, CheckpointReader::Open("/ckpt", {}));
//   const TensorEntry* t = reader->metadata().FindTensor("model.w");
//   std::vector<char> buf(t->nbytes());
//   SC_RETURN_IF_ERROR(reader->Read({{t, FullBox(t->shape), buf.data()}}));
//
// How a read goes: every requested box is intersected with the tensor's stored chunks; the
// torch.save record of each chunk needed is parsed once (two small reads: head and tail); then
// each (chunk, region) piece is read. A piece that is contiguous both in the record and in the
// destination is read by positioned reads straight into the destination, split into blocks of
// `block_size` spread over the thread pool; any other piece reads the smallest byte span that
// holds it and copies the elements (strided views, dim-1 slices, big-endian records). A dim-0
// range of a chunk is a contiguous sub-range of its payload: only those bytes are read.
#ifndef SHARDCAST_CHECKPOINT_READER_H_
#define SHARDCAST_CHECKPOINT_READER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checkpoint/metadata.h"
#include "checkpoint/resolve.h"
#include "checkpoint/storage.h"
#include "checkpoint/torch_record.h"
#include "common/thread_pool.h"

namespace shardcast {

struct ReaderOptions {
  std::optional<int64_t> iteration;  // Megatron iteration folder to open
  int threads = 8;                   // parallel positioned reads in flight
  uint64_t block_size = 16ull << 20; // bytes per read request
  StorageOptions storage;            // e.g. O_DIRECT
  // `.metadata` larger than this is refused (ResourceExhausted naming both sizes) before it is
  // read; the unpickler's memory is bounded relative to the file (checkpoint/pickle.h).
  uint64_t max_metadata_bytes = 1ull << 30;
  // Check each record's stored ZIP CRC-32 over its payload whenever the whole payload has been
  // read: in one piece, or front to back over several pieces or Read() calls (dim-0 slabs in
  // order). DataLoss naming the file and the key on a mismatch. ReaderStats says what was covered.
  bool verify_storage_crc = true;
};

// What the reader has checked so far; records are counted once each.
struct ReaderStats {
  uint64_t bytes_read = 0;
  // Records whose whole payload was read and matched its stored CRC-32.
  uint64_t crc_verified_records = 0;
  // Records only partly read (e.g. a dim-0 range of a chunk, one TP shard's columns) and never
  // read whole, nor front to back in pieces: their CRC-32 covers bytes that were not read, so it
  // cannot be checked.
  uint64_t crc_unverified_partial_records = 0;
  // Records that store no CRC-32 (0 with a non-empty payload: torch's compute_crc32=False).
  uint64_t crc_absent_records = 0;
};

// One region to read: `box` of `tensor` into `dst` (box elements, dense C order).
struct BoxRead {
  const TensorEntry* tensor = nullptr;
  Box box;
  char* dst = nullptr;
  // Optional: the index in tensor->chunks of a chunk that wholly contains `box` (a planner's
  // CopyOp::chunk). Checked; it saves looking the chunk up. -1: unknown.
  int64_t chunk = -1;
};

class CheckpointReader {
 public:
  // Resolves `path` (see resolve.h), reads and parses `.metadata` (capped, see ReaderOptions) or
  // the safetensors headers (safetensors_folder.h) and checks every item's size against its file
  // (CheckStoredSizes). Safetensors items store no CRC-32: they count as crc_absent_records.
  static absl::StatusOr<std::unique_ptr<CheckpointReader>> Open(const std::string& path, ReaderOptions options = {});

  const CheckpointMetadata& metadata() const { return metadata_; }
  const ResolvedCheckpoint& resolved() const { return resolved_; }

  // Tensors whose key starts with `prefix` ("" selects all), in metadata order.
  std::vector<const TensorEntry*> Select(const std::string& prefix) const;

  // Reads every box. Boxes must lie inside their tensors (InvalidArgument otherwise). Errors name
  // the file, the key and what was wrong; on error the destinations are partly written.
  absl::Status Read(const std::vector<BoxRead>& reads);

  // The payload of a bytes entry (after stream transforms).
  absl::StatusOr<std::string> ReadBytesEntry(const BytesEntry& entry);

  // Bytes fetched from storage so far (record headers and payloads).
  uint64_t bytes_read() const { return bytes_read_.load(); }
  ReaderStats stats() const;

 private:
  struct ParsedChunk {
    TensorRecord record;
    std::shared_ptr<const std::string> decoded;  // the whole record, when it had stream transforms
  };
  CheckpointReader(ResolvedCheckpoint resolved, CheckpointMetadata metadata, std::unique_ptr<CheckpointFiles> files,
                   ReaderOptions options);
  absl::StatusOr<ParsedChunk> ParseChunk(const TensorEntry& t, const StoredChunk& c);
  // The chunk that wholly contains a non-empty `box`, found in O(1) from the chunk that held
  // the previous such box of `t` (or the one after it); nullptr: scan the chunks. Reading many
  // small boxes in chunk order (reshard's copies of a 40k-chunk tensor) is then linear, not
  // quadratic.
  const StoredChunk* ChunkHolding(const TensorEntry& t, const Box& box);
  // Storage CRC-32 bookkeeping per record: `crc` covers payload bytes [0, prefix).
  struct CrcProgress {
    uint64_t prefix = 0;
    uint32_t crc = 0;
    bool verified = false;
    bool absent = false;  // the record stores no CRC-32
  };
  // Payload bytes [start, start + length) with CRC-32 `crc` were read: extends the record's
  // verified prefix when they continue it (or start it); once the prefix is the whole payload,
  // compares with the stored CRC-32 (DataLoss naming key and file on a mismatch).
  absl::Status ExtendCrc(const TensorEntry& t, const StoredChunk& c, const TensorRecord& rec, uint64_t start,
                         uint64_t length, uint32_t crc);
  // The whole payload's CRC-32 (zstd records, decoded in memory).
  absl::Status CheckCrc(const TensorEntry& t, const StoredChunk& c, const TensorRecord& rec, uint32_t crc);
  absl::Status CrcMismatch(const TensorEntry& t, const StoredChunk& c, const TensorRecord& rec, uint32_t crc) const;
  absl::StatusOr<std::string> ReadDecoded(const StorageLocation& loc, uint64_t max_decoded);
  std::string Where(const StorageLocation& loc) const;

  // The steps of Read() (types defined in reader.cc).
  struct Piece;
  struct ReadJob;
  struct PieceCrc;
  // Checks `r` and appends its parts, one per chunk it intersects (one without a scan when a
  // chunk holds it whole).
  absl::Status AddPieces(const BoxRead& r, std::vector<Piece>* pieces);
  // Parses (in parallel, once: cached in parsed_) the records of the chunks the pieces touch.
  absl::Status ParseChunksOf(const std::vector<Piece>& pieces);
  // Appends the jobs of one piece (block reads into the destination, or one span read + copy)
  // and, when its CRC is to be verified, where their block CRCs go.
  void AddJobs(const Piece& p, std::vector<ReadJob>* jobs, std::deque<PieceCrc>* piece_crcs);
  absl::Status ReadDirect(const ReadJob& j);
  absl::Status ReadAndCopy(const ReadJob& j);
  // Joins each piece's block CRCs and extends the records' verified prefixes (ExtendCrc).
  absl::Status VerifyPieceCrcs(const std::deque<PieceCrc>& piece_crcs);

  ResolvedCheckpoint resolved_;
  CheckpointMetadata metadata_;
  std::unique_ptr<CheckpointFiles> files_;
  ReaderOptions options_;
  std::unique_ptr<ThreadPool> pool_;
  mutable std::mutex mu_;
  std::map<const StoredChunk*, ParsedChunk> parsed_;  // guarded by mu_
  std::map<const StoredChunk*, CrcProgress> crc_progress_;  // guarded by mu_
  std::map<const TensorEntry*, size_t> chunk_hint_;          // guarded by mu_; see ChunkHolding
  std::atomic<uint64_t> bytes_read_{0};
};

// What Open() checks before anyone allocates by `.metadata`'s numbers: every stored item lies
// inside its file (a regular file: see storage.h), and every chunk's bytes fit its record (for
// a zstd item: its length times zstd's largest expansion). Chunks of zero elements, which are
// never read, are skipped. OutOfRange / DataLoss naming the key,
// the file and both numbers; e.g. a shape of [2^60] backed by a 1 KiB record is refused here.
absl::Status CheckStoredSizes(const CheckpointMetadata& md, CheckpointFiles& files);

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_READER_H_
