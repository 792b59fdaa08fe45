// Read-only access to the files of one checkpoint folder: path safety, bounds-checked positioned
// reads (optionally O_DIRECT), and a RecordSource over one stored item.
//
// Nothing here ever opens a file for writing: the checkpoint folder is only read.
#ifndef SHARDCAST_CHECKPOINT_STORAGE_H_
#define SHARDCAST_CHECKPOINT_STORAGE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "checkpoint/metadata.h"
#include "checkpoint/torch_record.h"

namespace shardcast {

struct StorageOptions {
  // Bypass the page cache (O_DIRECT); reads then go through aligned bounce buffers.
  bool o_direct = false;
};

class CheckpointFiles {
 public:
  // `dir` must exist; it is canonicalized once.
  static absl::StatusOr<std::unique_ptr<CheckpointFiles>> Open(const std::string& dir, StorageOptions options = {});
  ~CheckpointFiles();

  const std::string& dir() const { return dir_; }

  // Size of a file inside the folder. NotFound if missing; PermissionDenied if the path (or a
  // symlink on it) leads outside the folder; FailedPrecondition if it is not a regular file (a
  // FIFO, device, socket or directory is refused without a blocking open).
  absl::StatusOr<uint64_t> FileSize(const std::string& relative_path);

  // Reads exactly n bytes at `offset`. OutOfRange (naming the file) if the range passes the
  // file's end; DataLoss on a short read.
  absl::Status ReadAt(const std::string& relative_path, uint64_t offset, uint64_t n, char* out);

  // Reads a whole (small) file; ResourceExhausted naming its size and `max_bytes` if larger,
  // before anything is allocated.
  absl::StatusOr<std::string> ReadFile(const std::string& relative_path, uint64_t max_bytes);

 private:
  struct OpenFile {
    int fd = -1;
    int direct_fd = -1;
    uint64_t size = 0;
  };
  CheckpointFiles(std::string dir, StorageOptions options) : dir_(std::move(dir)), options_(options) {}
  absl::StatusOr<OpenFile*> Get(const std::string& relative_path);

  std::string dir_;
  StorageOptions options_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<OpenFile>> files_;
};

// The bytes of one stored item [location.offset, +location.length) as a RecordSource.
class StoredItemSource : public RecordSource {
 public:
  StoredItemSource(CheckpointFiles* files, const StorageLocation& location) : files_(files), loc_(location) {}
  uint64_t size() const override { return loc_.length; }
  absl::Status Read(uint64_t offset, uint64_t n, char* out) const override;

 private:
  CheckpointFiles* files_;
  const StorageLocation& loc_;
};

}  // namespace shardcast

#endif  // SHARDCAST_CHECKPOINT_STORAGE_H_
