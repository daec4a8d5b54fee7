#include "sluice/pickup/pickup_directory.h"

#include <dirent.h>
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

// Group access for submitters (PrepareDirectories' submit_group).
absl::Status OpenToGroup(const std::string& dir, gid_t group) {
  const std::pair<std::string, mode_t> modes[] = {
      {dir, 0710}, {dir + "/tmp", 01730}, {dir + "/new", 01730}};
  for (const auto& [path, mode] : modes) {
    if (chown(path.c_str(), static_cast<uid_t>(-1), group) != 0) return Errno("chgrp", path);
    if (chmod(path.c_str(), mode) != 0) return Errno("chmod", path);
  }
  return absl::OkStatus();
}

absl::Status PrepareDirectories(const std::string& dir, const std::string& spool_shard_dir,
                                long submit_group) {
  for (const std::string& d : {dir, dir + "/tmp", dir + "/new", dir + "/bad"}) {
    if (auto s = MakeDir(d); !s.ok()) return s;
  }
  if (submit_group >= 0) {
    if (auto s = OpenToGroup(dir, static_cast<gid_t>(submit_group)); !s.ok()) return s;
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

namespace {

// DIR/tmp and DIR/new must exist and be writable: `inject` never creates
// them (a typo in the path must not make a directory nobody reads).
absl::Status CheckInjectDirs(const std::string& tmp, const std::string& fresh) {
  for (const std::string& d : {tmp, fresh}) {
    struct stat st;
    if (stat(d.c_str(), &st) != 0 && errno == EACCES) {
      return absl::PermissionDeniedError(absl::StrCat(
          "pickup directory ", d, " cannot be reached by this user (uid ", getuid(),
          "): submit as its owner, or through the setgid `sluice sendmail` (pickup.group, "
          "deploy/README.md)"));
    }
    if (stat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::NotFoundError(
          absl::StrCat("pickup directory ", d,
                       " is missing (is this the directory given to sluice serve "
                       "--pickup? it creates tmp/, new/ and bad/)"));
    }
    // The effective ids: a setgid `sluice sendmail` writes as its group.
    if (faccessat(AT_FDCWD, d.c_str(), W_OK | X_OK, AT_EACCESS) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("pickup directory ", d, " is not writable: ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, const char* data, size_t size, const std::string& path) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("write", path);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Creates `path` (O_EXCL) with `f`'s bytes, fsynced.
absl::Status WriteBatchFile(const std::string& path, const BatchFile& f) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", path);
  absl::Status s = WriteAll(fd, f.contents.data(), f.contents.size(), path);
  if (s.ok() && !f.copy_from.empty()) {
    int in = open(f.copy_from.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) {
      s = Errno("open", f.copy_from);
    } else {
      char buf[256 * 1024];
      while (s.ok()) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          s = Errno("read", f.copy_from);
          break;
        }
        if (n == 0) break;
        s = WriteAll(fd, buf, static_cast<size_t>(n), path);
      }
      close(in);
    }
  }
  if (s.ok() && fsync(fd) != 0) s = Errno("fsync", path);
  if (close(fd) != 0 && s.ok()) s = Errno("close", path);
  return s;
}

absl::Status RemoveTreeAt(int parent, const std::string& name, const std::string& path, int depth) {
  if (unlinkat(parent, name.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno != EISDIR && errno != EPERM) return Errno("unlink", path);
  if (depth >= 8) return absl::FailedPreconditionError(path + ": directories nested too deep");
  int fd = openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    close(fd);
    return Errno("opendir", path);
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  absl::Status s;
  for (const std::string& n : names) {
    s = RemoveTreeAt(dirfd(d), n, path + "/" + n, depth + 1);
    if (!s.ok()) break;
  }
  closedir(d);
  if (!s.ok()) return s;
  if (unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return Errno("rmdir", path);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> Inject(const std::string& dir, std::string_view bytes) {
  const std::string tmp = dir + "/tmp";
  const std::string fresh = dir + "/new";
  if (auto s = CheckInjectDirs(tmp, fresh); !s.ok()) return s;
  const std::string name = UniqueName();
  const std::string tmp_path = absl::StrCat(tmp, "/", name);
  const std::string new_path = absl::StrCat(fresh, "/", name);
  // Mode 0444, as Postfix's postdrop: the daemon may run as another user
  // than the submitter; tmp/ and new/ let no one else list or reach it.
  int fd = open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
  if (fd < 0) return Errno("create", tmp_path);
  absl::Status s = WriteAll(fd, bytes.data(), bytes.size(), tmp_path);
  if (s.ok() && fsync(fd) != 0) s = Errno("fsync", tmp_path);
  if (s.ok() && rename(tmp_path.c_str(), new_path.c_str()) != 0) s = Errno("rename into", new_path);
  if (!s.ok()) {
    close(fd);
    unlink(tmp_path.c_str());
    return s;
  }
  s = FsyncDir(fresh);
  // A group submitter may not open new/ (mode 1730: no read): sync the
  // file system instead, which makes the rename durable too.
  if (absl::IsPermissionDenied(s)) s = syncfs(fd) == 0 ? absl::OkStatus() : Errno("syncfs", fresh);
  close(fd);
  if (!s.ok()) return s;
  return name;
}

absl::StatusOr<std::string> InjectBatch(const std::string& dir,
                                        const std::vector<BatchFile>& files) {
  const std::string tmp = dir + "/tmp";
  const std::string fresh = dir + "/new";
  if (auto s = CheckInjectDirs(tmp, fresh); !s.ok()) return s;
  const std::string name = UniqueName() + ".batch";
  const std::string tmp_path = absl::StrCat(tmp, "/", name);
  const std::string new_path = absl::StrCat(fresh, "/", name);
  if (mkdir(tmp_path.c_str(), 0700) != 0) return Errno("mkdir", tmp_path);
  absl::Status s;
  for (const BatchFile& f : files) {
    s = WriteBatchFile(absl::StrCat(tmp_path, "/", f.name), f);
    if (!s.ok()) break;
  }
  // The files' names must be durable before the directory can appear in new/.
  if (s.ok()) s = FsyncDir(tmp_path);
  if (s.ok() && rename(tmp_path.c_str(), new_path.c_str()) != 0) {
    s = Errno("rename into", new_path);
  }
  if (!s.ok()) {
    (void)RemoveTree(tmp_path);
    return s;
  }
  if (auto st = FsyncDir(fresh); !st.ok()) return st;
  if (auto st = FsyncDir(tmp); !st.ok()) return st;
  return name;
}

absl::Status RemoveTree(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "."
                             : slash == 0               ? "/"
                                                        : path.substr(0, slash);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  int fd = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? absl::OkStatus() : Errno("open", parent);
  absl::Status s = RemoveTreeAt(fd, name, path, 0);
  close(fd);
  return s;
}

}  // namespace sluice::pickup
