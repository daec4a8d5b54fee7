// Reading a queued message's record back from the spool through the ring,
// with a small cache of open segment descriptors (kFileCache idle ones): a
// segment holds thousands of records, opened once. A descriptor with a read
// in flight is never closed (its SQE names it by number); Tick asks the
// ring (statx) for the link count of idle ones and closes those whose file
// the ledger unlinked, so a delivered segment's space is not held.
//
// Trusts: RecordRef (the home shard's ledger). Limits: one record is read
// whole into memory.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine_parts.h"
#include "sluice/base/check.h"
#include "sluice/base/strings.h"

namespace sluice::delivery {
namespace {

// A read of one spool record through the ring.
struct ReadOp final : io::Completion {
  io::Loop* ring;
  int fd;
  uint64_t offset;
  std::string bytes;
  size_t done = 0;
  std::function<void(absl::StatusOr<std::string>)> callback;

  void Submit() {
    ring->Read(this, fd, bytes.data() + done, static_cast<unsigned>(bytes.size() - done),
               offset + done);
  }
  void OnComplete(int result, uint32_t) override {
    if (result < 0) {
      auto cb = std::move(callback);
      const int err = -result;
      delete this;
      return cb(absl::InternalError(absl::StrCat("read spool record: ", std::strerror(err))));
    }
    if (result == 0) {
      auto cb = std::move(callback);
      delete this;
      return cb(absl::DataLossError("spool record shorter than recorded"));
    }
    done += static_cast<size_t>(result);
    if (done < bytes.size()) return Submit();
    auto cb = std::move(callback);
    std::string out = std::move(bytes);
    delete this;
    cb(std::move(out));
  }
};

}  // namespace

bool Engine::Owns(std::string_view address) const {
  // The domain as the home shard announced it (lower case, after the last @).
  const size_t at = address.rfind('@');
  std::string domain(at == std::string_view::npos ? std::string_view() : address.substr(at + 1));
  for (char& c : domain) c = base::AsciiLower(c);
  return host_.OwnsDomain(domain);
}

RecordRef Engine::WhereOf(const Message& m) const {
  return RecordRef{m.dir, file_names_.name(m.file), m.offset, m.length};
}

void Engine::ReadRecord(const RecordRef& where,
                        std::function<void(absl::StatusOr<std::string>)> done) {
  const std::string key = absl::StrCat(where.dir, "/", where.file);
  int fd = -1;
  bool cached = false;  // fd belongs to file_fds_[key] (pinned by this read)
  if (auto it = file_fds_.find(key); it != file_fds_.end()) {
    fd = it->second.fd;
    ++it->second.reads;
    it->second.last_use = ++file_use_;
    cached = true;
  }
  if (fd < 0) {
    auto dfd = dir_fds_.find(where.dir);
    if (dfd == dir_fds_.end()) {
      const std::string path = absl::StrCat(config_.spool_dir, "/", where.dir);
      const int f = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (f < 0) {
        return done(absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno))));
      }
      dfd = dir_fds_.emplace(where.dir, f).first;
    }
    fd = openat(dfd->second, where.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return done(
          absl::InternalError(absl::StrCat("open spool file ", key, ": ", std::strerror(errno))));
    }
    // Message files are read once per attempt and may be large: do not cache.
    if (where.length != 0) {
      if (file_fds_.size() >= kFileCache) EvictIdleFile();
      file_fds_[key] = OpenFile{fd, 1, ++file_use_};
      cached = true;
    }
  }
  uint64_t length = where.length;
  const bool owned_fd = !cached;
  if (length == 0) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
      close(fd);
      return done(absl::InternalError("fstat spool file"));
    }
    length = static_cast<uint64_t>(st.st_size);
  }
  auto* op = new ReadOp();
  op->ring = &ring_;
  op->fd = fd;
  op->offset = where.offset;
  op->bytes.resize(length);
  if (owned_fd) {
    op->callback = [fd, done = std::move(done)](absl::StatusOr<std::string> r) {
      close(fd);
      done(std::move(r));
    };
  } else {
    op->callback = [this, key, done = std::move(done)](absl::StatusOr<std::string> r) {
      auto it = file_fds_.find(key);
      SLUICE_CHECK(it != file_fds_.end() && it->second.reads > 0);  // pinned while we read
      --it->second.reads;
      done(std::move(r));
    };
  }
  op->Submit();
}

void Engine::EvictIdleFile() {
  // The least recently used entry without a read in flight. If every entry
  // is busy the cache grows past kFileCache for a moment rather than close
  // a descriptor a queued read still names.
  auto victim = file_fds_.end();
  for (auto it = file_fds_.begin(); it != file_fds_.end(); ++it) {
    if (it->second.reads == 0 &&
        (victim == file_fds_.end() || it->second.last_use < victim->second.last_use)) {
      victim = it;
    }
  }
  if (victim == file_fds_.end()) return;
  close(victim->second.fd);
  file_fds_.erase(victim);
}

namespace {

// statx(fd, "", AT_EMPTY_PATH) through the ring: is the cached segment
// still linked? (A plain fstat would be a syscall on the shard thread.)
struct LinkCheck final : io::Completion {
  std::string key;
  struct statx st {};
  std::function<void(int, uint32_t)> callback;
  void OnComplete(int result, uint32_t) override {
    auto cb = std::move(callback);
    const uint32_t links = st.stx_nlink;
    delete this;
    cb(result, links);
  }
};

}  // namespace

void Engine::CloseUnlinkedFiles() {
  if (stopping_) return;  // the destructor closes them all
  for (auto& [key, file] : file_fds_) {
    if (file.reads > 0 || file.checking) continue;
    file.checking = true;
    ++link_checks_;
    ++file.reads;  // the statx names the descriptor: pinned like a read
    auto* op = new LinkCheck();
    op->callback = [this, key = key](int result, uint32_t links) {
      OnLinkCount(key, result, links);
    };
    ring_.Statx(op, file.fd, "", AT_EMPTY_PATH, STATX_NLINK, &op->st);
  }
}

void Engine::OnLinkCount(const std::string& key, int result, uint32_t links) {
  auto it = file_fds_.find(key);
  SLUICE_CHECK(it != file_fds_.end() && it->second.reads > 0);  // pinned while we asked
  --it->second.reads;
  --link_checks_;
  it->second.checking = false;
  if (result == 0 && links == 0 && it->second.reads == 0) {
    close(it->second.fd);
    file_fds_.erase(it);
  }
}

}  // namespace sluice::delivery
