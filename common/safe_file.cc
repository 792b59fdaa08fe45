#include "common/safe_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace shardcast {
namespace {

const char* FileTypeName(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

}  // namespace

ScopedFd& ScopedFd::operator=(ScopedFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

ScopedFd::~ScopedFd() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status ErrnoToStatus(int err, const std::string& what) {
  std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  if (err == ENOENT || err == ENOTDIR) return absl::NotFoundError(msg);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(msg);
  return absl::InternalError(msg);
}

absl::StatusOr<RegularFile> OpenRegularFile(const std::string& path, int extra_flags) {
  RegularFile f;
  f.fd = ScopedFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | extra_flags));
  if (f.fd.get() < 0) {
    const int err = errno;
    if (err == ELOOP) {
      return absl::FailedPreconditionError(absl::StrCat(path, " is a symbolic link, not a regular file"));
    }
    return ErrnoToStatus(err, absl::StrCat("open ", path));
  }
  struct stat st;
  if (::fstat(f.fd.get(), &st) != 0) return ErrnoToStatus(errno, absl::StrCat("stat ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is ", FileTypeName(st.st_mode), ", not a regular file; refusing to read it"));
  }
  // Regular-file reads ignore O_NONBLOCK, but clear it so that nothing depends on that.
  const int flags = ::fcntl(f.fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(f.fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return ErrnoToStatus(errno, absl::StrCat("fcntl ", path));
  }
  f.size = static_cast<uint64_t>(st.st_size);
  return f;
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, uint64_t max_bytes, const std::string& what) {
  absl::StatusOr<RegularFile> f = OpenRegularFile(path);
  if (!f.ok()) return f.status();
  if (f->size > max_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(what, " ", path, " is ", f->size, " bytes, more than the ",
                                                     max_bytes, "-byte limit for it"));
  }
  // Reads at most the size fstat gave (<= max_bytes): a file growing meanwhile is not followed.
  std::string out(f->size, '\0');
  uint64_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::pread(f->fd.get(), out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, absl::StrCat("read ", path));
    if (n == 0) break;
    got += static_cast<uint64_t>(n);
  }
  out.resize(got);
  return out;
}

}  // namespace shardcast
