#include "checkpoint/storage.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/safe_file.h"
#include "common/status_macros.h"

namespace shardcast {
namespace {

constexpr uint64_t kDirectAlign = 4096;
constexpr uint64_t kDirectBounce = 8ull << 20;

absl::Status ErrnoStatus(int err, absl::string_view what) {
  std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

absl::Status PreadFull(int fd, uint64_t offset, uint64_t n, char* out, const std::string& path) {
  while (n > 0) {
    ssize_t got = ::pread(fd, out, n, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path, " at ", offset));
    }
    if (got == 0) return absl::DataLossError(absl::StrCat(path, ": unexpected end of file at ", offset));
    out += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointFiles>> CheckpointFiles::Open(const std::string& dir, StorageOptions options) {
  char buf[PATH_MAX];
  if (::realpath(dir.c_str(), buf) == nullptr) return ErrnoStatus(errno, absl::StrCat("checkpoint folder ", dir));
  return std::unique_ptr<CheckpointFiles>(new CheckpointFiles(buf, options));
}

CheckpointFiles::~CheckpointFiles() {
  for (auto& [name, f] : files_) {
    if (f->fd >= 0) ::close(f->fd);
    if (f->direct_fd >= 0) ::close(f->direct_fd);
  }
}

absl::StatusOr<CheckpointFiles::OpenFile*> CheckpointFiles::Get(const std::string& rel) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(rel);
  if (it != files_.end()) return it->second.get();
  if (rel.empty() || rel[0] == '/') {
    return absl::PermissionDeniedError(absl::StrCat("'", rel, "' is not a path inside ", dir_));
  }
  const std::string path = absl::StrCat(dir_, "/", rel);
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    return ErrnoStatus(errno, absl::StrCat("checkpoint file ", path, " (named in .metadata)"));
  }
  if (!absl::StartsWith(resolved, dir_ + "/")) {
    return absl::PermissionDeniedError(
        absl::StrCat("checkpoint file '", rel, "' resolves to ", resolved, ", outside the checkpoint folder ", dir_));
  }
  // O_NONBLOCK | O_NOFOLLOW, then S_ISREG on the descriptor: a FIFO or device in place of a data
  // file is refused at once instead of blocking open() or reading forever.
  SC_ASSIGN_OR_RETURN(RegularFile file, OpenRegularFile(resolved));
  auto f = std::make_unique<OpenFile>();
  f->size = file.size;
  f->fd = file.fd.release();
  if (options_.o_direct) {
    absl::StatusOr<RegularFile> direct = OpenRegularFile(resolved, O_DIRECT);  // may fail (tmpfs): fall back
    if (direct.ok()) f->direct_fd = direct->fd.release();
  }
  OpenFile* raw = f.get();
  files_[rel] = std::move(f);
  return raw;
}

absl::StatusOr<uint64_t> CheckpointFiles::FileSize(const std::string& rel) {
  SC_ASSIGN_OR_RETURN(OpenFile * f, Get(rel));
  return f->size;
}

absl::Status CheckpointFiles::ReadAt(const std::string& rel, uint64_t offset, uint64_t n, char* out) {
  SC_ASSIGN_OR_RETURN(OpenFile * f, Get(rel));
  if (offset > f->size || n > f->size - offset) {
    return absl::OutOfRangeError(absl::StrCat(dir_, "/", rel, ": range [", offset, ", ", offset + n,
                                              ") passes the end of the file (", f->size, " bytes; truncated?)"));
  }
  const std::string path = absl::StrCat(dir_, "/", rel);
  if (f->direct_fd < 0 || n < kDirectAlign) return PreadFull(f->fd, offset, n, out, path);
  // O_DIRECT: aligned reads into a bounce buffer.
  void* bounce = nullptr;
  if (::posix_memalign(&bounce, kDirectAlign, kDirectBounce) != 0) return absl::ResourceExhaustedError("bounce buffer");
  absl::Status status;
  while (n > 0 && status.ok()) {
    const uint64_t start = offset & ~(kDirectAlign - 1);
    const uint64_t skip = offset - start;
    uint64_t len = std::min<uint64_t>(kDirectBounce, (skip + n + kDirectAlign - 1) & ~(kDirectAlign - 1));
    // The last block may pass EOF; O_DIRECT returns what exists.
    ssize_t got = ::pread(f->direct_fd, bounce, len, static_cast<off_t>(start));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      status = ErrnoStatus(errno, absl::StrCat("read (O_DIRECT) ", path, " at ", start));
      break;
    }
    if (static_cast<uint64_t>(got) <= skip) {
      status = absl::DataLossError(absl::StrCat(path, ": unexpected end of file at ", offset));
      break;
    }
    const uint64_t take = std::min<uint64_t>(n, static_cast<uint64_t>(got) - skip);
    std::memcpy(out, static_cast<char*>(bounce) + skip, take);
    out += take;
    offset += take;
    n -= take;
  }
  ::free(bounce);
  return status;
}

absl::StatusOr<std::string> CheckpointFiles::ReadFile(const std::string& rel, uint64_t max_bytes) {
  SC_ASSIGN_OR_RETURN(uint64_t size, FileSize(rel));
  if (size > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(dir_, "/", rel, " is ", size, " bytes, more than the ", max_bytes,
                                                     "-byte limit for it"));
  }
  std::string out(size, '\0');
  SC_RETURN_IF_ERROR(ReadAt(rel, 0, size, out.data()));
  return out;
}

absl::Status StoredItemSource::Read(uint64_t offset, uint64_t n, char* out) const {
  if (offset > loc_.length || n > loc_.length - offset) {
    return absl::OutOfRangeError(absl::StrCat("read past the end of the stored item"));
  }
  return files_->ReadAt(loc_.relative_path, loc_.offset + offset, n, out);
}

}  // namespace shardcast
