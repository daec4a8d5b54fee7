// The spool's exclusive lock (spool/spool_lock.h): flock on <spool>/lock,
// the holder's PID inside. Plain blocking calls: it runs once, at start-up.
#include "sluice/spool/spool_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace sluice::spool {
namespace {

// The holder writes its PID right after taking the lock, so a reader may
// find the file still empty: it looks again this often, this long apart
// (0.2 s at most, only on the way to refusing to start).
constexpr int kPidReadAttempts = 20;
constexpr useconds_t kPidReadPauseMicros = 10'000;

// The PID the holder wrote, or "unknown".
std::string HolderPid(int fd) {
  for (int attempt = 0; attempt < kPidReadAttempts; ++attempt) {
    char buf[32] = {};
    const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n > 0) {
      std::string text(buf, static_cast<size_t>(n));
      return std::string(absl::StripAsciiWhitespace(text));
    }
    usleep(kPidReadPauseMicros);
  }
  return "unknown";
}

}  // namespace

SpoolLock::~SpoolLock() {
  if (fd_ >= 0) close(fd_);  // the kernel releases the lock with the last descriptor
}

absl::StatusOr<SpoolLock> SpoolLock::Acquire(const std::string& root) {
  const std::string path = absl::StrCat(root, "/", kLockFileName);
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("open ", path, ": ", std::strerror(errno)));
  }
  SpoolLock lock(fd);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("spool ", root, " is in use by pid ", HolderPid(fd), " (lock ", path, ")"));
    }
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("flock ", path, ": ", std::strerror(errno)));
  }
  const std::string pid = absl::StrCat(getpid(), "\n");
  if (ftruncate(fd, 0) != 0 ||
      pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return absl::Status(absl::ErrnoToStatusCode(errno),
                        absl::StrCat("write ", path, ": ", std::strerror(errno)));
  }
  return lock;
}

}  // namespace sluice::spool
