#include "sluice/pickup/pickup_directory.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sluice::pickup {
namespace {

absl::Status Errno(std::string_view what, const std::string& path, int err = errno) {
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(std::string(what), " ", path, ": ", std::strerror(err)));
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Errno("mkdir", path);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Errno("stat", path);
  if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(path + " is not a directory");
  return absl::OkStatus();
}

absl::Status FsyncDir(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return Errno("fsync", path, err);
  return absl::OkStatus();
}

}  // namespace

absl::Status PrepareDirectories(const std::string& dir, const std::string& spool_shard_dir) {
  for (const std::string& d : {dir, dir + "/tmp", dir + "/new", dir + "/bad"}) {
    if (auto s = MakeDir(d); !s.ok()) return s;
  }
  const std::string claimed = absl::StrCat(spool_shard_dir, "/", std::string(kClaimedDir));
  if (auto s = MakeDir(claimed); !s.ok()) return s;
  struct stat a, b;
  if (stat((dir + "/new").c_str(), &a) != 0) return Errno("stat", dir + "/new");
  if (stat(claimed.c_str(), &b) != 0) return Errno("stat", claimed);
  if (a.st_dev != b.st_dev) {
    return absl::FailedPreconditionError(
        absl::StrCat("pickup directory ", dir, " and spool directory ", spool_shard_dir,
                     " are on different filesystems; files are claimed by rename(2), so the pickup "
                     "directory must be on the spool's filesystem"));
  }
  if (auto s = FsyncDir(dir); !s.ok()) return s;
  return FsyncDir(spool_shard_dir);
}

std::string UniqueName() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  uint64_t random = 0;
  if (getrandom(&random, sizeof random, 0) != static_cast<ssize_t>(sizeof random)) {
    random = static_cast<uint64_t>(tv.tv_usec) * 2654435761u ^ static_cast<uint64_t>(getpid());
  }
  char host[HOST_NAME_MAX + 1] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  // '/' cannot occur in a host name, but keep the name a single path part.
  for (char* p = host; *p; ++p) {
    if (*p == '/' || *p == '.') *p = '_';
  }
  return absl::StrFormat("%d.%06d.P%dR%016x.%s", static_cast<long long>(tv.tv_sec),
                         static_cast<int>(tv.tv_usec), static_cast<int>(getpid()),
                         static_cast<unsigned long long>(random), host);
}

absl::Status WriteFileSynced(const std::string& path, std::string_view text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("open", path);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      close(fd);
      return Errno("write", path, err);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    const int err = errno;
    close(fd);
    return Errno("fsync", path, err);
  }
  if (close(fd) != 0) return Errno("close", path);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Inject(const std::string& dir, std::string_view bytes) {
  const std::string tmp = dir + "/tmp";
  const std::string fresh = dir + "/new";
  for (const std::string& d : {tmp, fresh}) {
    struct stat st;
    if (stat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::NotFoundError(
          absl::StrCat("pickup directory ", d,
                       " is missing (is this the directory given to sluice serve "
                       "--pickup? it creates tmp/, new/ and bad/)"));
    }
    if (access(d.c_str(), W_OK | X_OK) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("pickup directory ", d, " is not writable: ", std::strerror(errno)));
    }
  }
  const std::string name = UniqueName();
  const std::string tmp_path = absl::StrCat(tmp, "/", name);
  const std::string new_path = absl::StrCat(fresh, "/", name);
  int fd = open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", tmp_path);
  close(fd);
  if (auto s = WriteFileSynced(tmp_path, bytes); !s.ok()) {
    unlink(tmp_path.c_str());
    return s;
  }
  if (rename(tmp_path.c_str(), new_path.c_str()) != 0) {
    auto s = Errno("rename into", new_path);
    unlink(tmp_path.c_str());
    return s;
  }
  if (auto s = FsyncDir(fresh); !s.ok()) return s;
  return name;
}

}  // namespace sluice::pickup
