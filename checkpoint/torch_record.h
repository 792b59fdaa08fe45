// Parses one `torch.save` record: the ZIP archive DCP writes for every tensor chunk (and for most
// bytes items) at an (offset, length) of a `.distcp` file.
//
// Only metadata is read here: the end of the archive (EOCD, zip64 EOCD, central directory), the
// local headers of the entries needed, `data.pkl` (through the restricted unpickler) and
// `byteorder`. The payload itself stays on disk: TensorRecord says where it is, so a caller reads
// only the byte range it needs. All ZIP offsets are relative to the record's start.
#ifndef SHARDCAST_CHECKPOINT_TORCH_RECORD_H_
#define SHARDCAST_CHECKPOINT_TORCH_RECORD_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/box.h"
#include "common/dtype.h"

namespace shardcast {

// Random access to the bytes of one record. Offsets are relative to the record's start.
class RecordSource {
 public:
  virtual ~RecordSource() = default;
  virtual uint64_t size() const = 0;
  // Reads exactly n bytes at `offset` into `out`; OutOfRange / DataLoss / Internal on failure.
  virtual absl::Status Read(uint64_t offset, uint64_t n, char* out) const = 0;
};

// A record held in memory (decompressed records, tests, fuzzing).
class StringRecordSource : public RecordSource {
 public:
  explicit StringRecordSource(absl::string_view bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  absl::Status Read(uint64_t offset, uint64_t n, char* out) const override;

 private:
  absl::string_view bytes_;
};

struct ZipEntry {
  std::string name;
  uint64_t local_header_offset = 0;
  uint64_t size = 0;          // stored == uncompressed (method 0)
  uint32_t crc32 = 0;
  uint64_t directory_offset = 0;  // where the central directory starts (entries' data end there)
};

// Reads the central directory. Refuses compressed entries, bad signatures and anything that
// points outside the record. `source_name` prefixes errors.
absl::StatusOr<std::vector<ZipEntry>> ReadZipDirectory(const RecordSource& record, const std::string& source_name);

// Reads an entry's local header and returns where its stored bytes start.
absl::StatusOr<uint64_t> ZipEntryDataOffset(const RecordSource& record, const ZipEntry& entry,
                                            const std::string& source_name);

// What `_rebuild_tensor_v2/_v3` in `data.pkl` describes.
struct TensorRecord {
  DType dtype = DType::kFloat32;
  Shape shape;
  Shape strides;               // in elements
  int64_t storage_offset = 0;  // in elements
  uint64_t data_offset = 0;    // byte offset of the storage payload (`data/<key>`) in the record
  uint64_t data_length = 0;    // storage bytes
  uint32_t data_crc32 = 0;     // the payload entry's CRC-32 from the central directory (0: none)
  bool big_endian = false;

  // True when the elements are stored densely in C order (no gaps, no transposition).
  bool IsContiguous() const;
};

// Parses a tensor record. Errors (InvalidArgument / DataLoss) name `source_name` and the problem:
// truncation, a bad ZIP signature, a missing data.pkl or data/<key>, a disallowed global, a
// payload smaller than size/stride require.
absl::StatusOr<TensorRecord> ParseTensorRecord(const RecordSource& record, const std::string& source_name);

// The globals a tensor record's data.pkl may reference (exposed for the fuzz target).
const absl::flat_hash_set<std::string>& TensorRecordAllowedGlobals();

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_TORCH_RECORD_H_
