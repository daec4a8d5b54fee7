// Opening and reopening the accounting log's file; see sluice/server/log_file.h.
#include "sluice/server/log_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sluice::server {
namespace {

absl::Status ErrnoError(const char* what, const std::string& path) {
  const int err = errno;
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

// mkdir -p of the folder that holds `path`.
absl::Status MakeParents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string dir = path.substr(0, slash);
    if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
      return ErrnoError("create log folder", dir);
    }
  }
  return absl::OkStatus();
}

int OpenForAppend(const std::string& path) {
  return open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

}  // namespace

absl::StatusOr<int> OpenLogFile(const std::string& path) {
  int fd = OpenForAppend(path);
  if (fd < 0 && errno == ENOENT) {
    if (absl::Status s = MakeParents(path); !s.ok()) return s;
    fd = OpenForAppend(path);
  }
  if (fd < 0) return ErrnoError("open log", path);
  return fd;
}

absl::Status ReopenLogFile(const std::string& path, int fd) {
  auto fresh = OpenLogFile(path);
  if (!fresh.ok()) return fresh.status();
  // dup3 keeps O_CLOEXEC on `fd`; the number stays what the shards hold.
  const int done = dup3(*fresh, fd, O_CLOEXEC);
  const int err = errno;
  close(*fresh);
  if (done < 0) {
    errno = err;
    return ErrnoError("reopen log", path);
  }
  return absl::OkStatus();
}

}  // namespace sluice::server
