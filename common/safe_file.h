// Opening and reading files that someone else controls (a checkpoint folder, a tracker file)
// without blocking or following surprises.
//
// A FIFO, a device, a socket or a directory where a regular file is expected must be refused,
// not opened: open() of a FIFO blocks until a writer appears (forever), and reading /dev/zero
// never ends. OpenRegularFile opens with O_NONBLOCK (so open() itself cannot block) and
// O_NOFOLLOW, checks S_ISREG on the opened descriptor (no check-then-open race) and only then
// clears O_NONBLOCK. ReadSmallFile adds a size cap checked before any allocation.
#ifndef SHARDCAST_COMMON_SAFE_FILE_H_
#define SHARDCAST_COMMON_SAFE_FILE_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace shardcast {

// An open file descriptor, closed on destruction.
class ScopedFd {
 public:
  ScopedFd() = default;
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(ScopedFd&& o) noexcept : fd_(o.release()) {}
  ScopedFd& operator=(ScopedFd&& o) noexcept;
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd();

  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

struct RegularFile {
  ScopedFd fd;
  uint64_t size = 0;
};

// Opens `path` read-only (plus `extra_flags`, e.g. O_DIRECT) if it is a regular file. Errors name
// the path: NotFound, PermissionDenied, FailedPrecondition "... is a FIFO, not a regular file"
// (also for a symlink as the last component: resolve it first), Internal for other errno.
absl::StatusOr<RegularFile> OpenRegularFile(const std::string& path, int extra_flags = 0);

// Reads a whole regular file of at most `max_bytes` (ResourceExhausted naming the size and the
// cap otherwise, before anything is allocated). `what` names the file's role in errors.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes, const std::string& what);

// The errno of a failed call as a Status whose message is "`what`: strerror".
absl::Status ErrnoToStatus(int err, const std::string& what);

}  // namespace shardcast

#endif  // SHARDCAST_COMMON_SAFE_FILE_H_
