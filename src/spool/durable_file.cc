#include "sluice/spool/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::spool {
namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(base::Av(what), " ", path, ": ", std::strerror(errno)));
}

// Closes fd and removes the temporary after a failed step, keeping that
// step's error.
absl::Status Abandon(int fd, const std::string& temporary, absl::Status why) {
  if (fd >= 0) close(fd);
  unlink(temporary.c_str());
  return why;
}

}  // namespace

absl::Status SyncDirectory(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open", dir);
  const int r = fsync(fd);
  const int err = errno;
  close(fd);
  errno = err;
  return r == 0 ? absl::OkStatus() : Errno("fsync", dir);
}

absl::Status ReplaceFileDurably(const std::string& dir, std::string_view name,
                                std::string_view bytes) {
  const std::string path = absl::StrCat(dir, "/", base::Av(name));
  const std::string temporary = path + ".tmp";
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", temporary);
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Abandon(fd, temporary, Errno("write", temporary));
    done += static_cast<size_t>(n);
  }
  if (fdatasync(fd) != 0) return Abandon(fd, temporary, Errno("fdatasync", temporary));
  close(fd);
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    return Abandon(-1, temporary, Errno("rename", temporary));
  }
  return SyncDirectory(dir);
}

absl::StatusOr<std::optional<std::string>> ReadReplacedFile(const std::string& dir,
                                                            std::string_view name) {
  const std::string path = absl::StrCat(dir, "/", base::Av(name));
  unlink((path + ".tmp").c_str());
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    return Errno("open", path);
  }
  std::string bytes;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) bytes.append(buf, static_cast<size_t>(n));
  }
  const int err = errno;
  close(fd);
  if (n < 0) {
    errno = err;
    return Errno("read", path);
  }
  return bytes;
}

}  // namespace sluice::spool
