#include "sluice/spool/spool_directory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "sluice/base/crc32c.h"
#include "sluice/base/strings.h"

namespace sluice::spool {
namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(base::Av(what), " ", path, ": ", std::strerror(errno)));
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return Errno("mkdir", path);
  return absl::OkStatus();
}

absl::Status FsyncPath(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  int rc = fsync(fd);
  close(fd);
  if (rc != 0) return Errno("fsync", path);
  return absl::OkStatus();
}

bool PReadAll(int fd, char* buf, size_t size, uint64_t offset) {
  while (size > 0) {
    ssize_t n = pread(fd, buf, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

// Footer and envelope only: enough to list and queue a message.
absl::StatusOr<QueuedMessage> ReadHead(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { close(*f); });
  struct stat st;
  if (fstat(fd, &st) != 0) return Errno("stat", path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kPreamble.size() + kFooterSize) return absl::DataLossError("file too short");
  std::string footer_bytes(kFooterSize, '\0');
  if (!PReadAll(fd, footer_bytes.data(), kFooterSize, size - kFooterSize)) {
    return Errno("read", path);
  }
  auto footer = DecodeFooter(footer_bytes);
  if (!footer.ok()) return footer.status();
  if (footer->envelope_offset < kPreamble.size() ||
      footer->envelope_offset + footer->envelope_size != size - kFooterSize) {
    return absl::DataLossError("footer points outside the file");
  }
  std::string env(footer->envelope_size, '\0');
  if (!PReadAll(fd, env.data(), env.size(), footer->envelope_offset)) return Errno("read", path);
  if (base::Crc32c(0, env.data(), env.size()) != footer->envelope_crc) {
    return absl::DataLossError("envelope checksum mismatch");
  }
  auto envelope = DecodeEnvelope(env);
  if (!envelope.ok()) return envelope.status();
  if (envelope->body_size + kPreamble.size() != footer->envelope_offset) {
    return absl::DataLossError("body size mismatch");
  }
  envelope->body_crc = footer->body_crc;
  QueuedMessage m;
  m.path = path;
  m.file_size = size;
  m.envelope = std::move(*envelope);
  return m;
}

bool IsShardDirectoryName(const char* name, int& number) {
  uint64_t n = 0;
  if (!base::ParseUint64(name, n) || n > 1'000'000) return false;
  number = static_cast<int>(n);
  return true;
}

}  // namespace

absl::Status PrepareSpool(const std::string& root, int shards) {
  if (auto s = MakeDir(root); !s.ok()) return s;
  for (int i = 0; i < shards; ++i) {
    if (auto s = MakeDir(absl::StrCat(root, "/", i)); !s.ok()) return s;
  }
  if (auto s = MakeDir(root + "/corrupt"); !s.ok()) return s;
  return FsyncPath(root);
}

absl::StatusOr<std::string> ReadMessageFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { close(*f); });
  struct stat st;
  if (fstat(fd, &st) != 0) return Errno("stat", path);
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  if (!PReadAll(fd, bytes.data(), bytes.size(), 0)) return Errno("read", path);
  return bytes;
}

absl::StatusOr<RecoveryReport> ScanSpool(const std::string& root, const ScanOptions& options) {
  RecoveryReport report;
  DIR* top = opendir(root.c_str());
  if (top == nullptr) return Errno("opendir", root);
  while (dirent* d = readdir(top)) {
    int number;
    if (IsShardDirectoryName(d->d_name, number)) report.directories.push_back(number);
  }
  closedir(top);
  std::sort(report.directories.begin(), report.directories.end());
  bool moved_any = false;
  for (int number : report.directories) {
    const std::string dir = absl::StrCat(root, "/", number);
    DIR* dp = opendir(dir.c_str());
    if (dp == nullptr) return Errno("opendir", dir);
    std::vector<std::string> names;
    while (dirent* d = readdir(dp)) {
      if (d->d_name[0] != '.') names.emplace_back(d->d_name);
    }
    closedir(dp);
    bool removed_here = false;
    for (const std::string& name : names) {
      const std::string path = absl::StrCat(dir, "/", name);
      const std::string_view stem = std::string_view(name).substr(0, base::QueueId::kTextSize);
      const std::string_view ext = std::string_view(name).substr(std::min(name.size(), stem.size()));
      auto id = base::QueueId::Parse(stem);
      if (id && ext == ".tmp") {
        // An unfinished write: it was never acknowledged.
        if (options.repair) {
          if (unlink(path.c_str()) != 0) return Errno("unlink", path);
          removed_here = true;
        }
        ++report.temporary_removed;
        if (*id > report.newest) report.newest = *id;
        continue;
      }
      if (!id || ext != ".msg") continue;  // not ours; leave it alone
      if (*id > report.newest) report.newest = *id;
      absl::StatusOr<QueuedMessage> m = ReadHead(path);
      if (m.ok() && options.verify_body) {
        auto bytes = ReadMessageFile(path);
        if (!bytes.ok()) {
          m = bytes.status();
        } else if (auto parsed = ParseFile(*bytes); !parsed.ok()) {
          m = parsed.status();
        }
      }
      if (m.ok() && m->envelope.id != *id) m = absl::DataLossError("id does not match file name");
      if (!m.ok()) {
        report.corrupt.push_back(absl::StrCat(path, ": ", m.status().message()));
        if (options.repair) {
          const std::string target = absl::StrCat(root, "/corrupt/", number, "-", name);
          if (rename(path.c_str(), target.c_str()) != 0) return Errno("rename", path);
          std::string why = std::string(m.status().message()) + "\n";
          int fd = open((target + ".why").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
          if (fd >= 0) {
            (void)!write(fd, why.data(), why.size());
            fsync(fd);
            close(fd);
          }
          moved_any = removed_here = true;
        }
        continue;
      }
      m->directory = number;
      report.messages.push_back(std::move(*m));
    }
    if (removed_here) {
      if (auto s = FsyncPath(dir); !s.ok()) return s;
    }
  }
  if (moved_any) {
    if (auto s = FsyncPath(root + "/corrupt"); !s.ok()) return s;
  }
  std::sort(report.messages.begin(), report.messages.end(),
            [](const QueuedMessage& a, const QueuedMessage& b) {
              return a.envelope.id < b.envelope.id;
            });
  return report;
}

absl::StatusOr<std::string> FindMessage(const std::string& root, base::QueueId id) {
  DIR* top = opendir(root.c_str());
  if (top == nullptr) return Errno("opendir", root);
  std::vector<int> dirs;
  while (dirent* d = readdir(top)) {
    int number;
    if (IsShardDirectoryName(d->d_name, number)) dirs.push_back(number);
  }
  closedir(top);
  for (int number : dirs) {
    std::string path = absl::StrCat(root, "/", number, "/", MessageFileName(id));
    if (access(path.c_str(), F_OK) == 0) return path;
  }
  return absl::NotFoundError(absl::StrCat("no queued message ", id.ToString()));
}

}  // namespace sluice::spool
