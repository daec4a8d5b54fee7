// Reading the accounting log line by line across rotations; see
// sluice/webhook/log_tailer.h.
#include "sluice/webhook/log_tailer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sluice/diag/diag.h"

namespace sluice::webhook {
namespace {

void Say(const std::string& line) { SLUICE_LOG(kNotice, "webhook.tailer", line, {}); }

uint64_t SizeOf(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

bool Compressed(std::string_view name) {
  for (std::string_view ext : {".gz", ".xz", ".bz2", ".zst", ".lz4", ".Z", ".tmp"}) {
    if (name.ends_with(ext)) return true;
  }
  return false;
}

struct Rotated {
  std::string path;
  struct stat st;
};

// The regular files beside `path` whose names extend its name.
std::vector<Rotated> RotatedFiles(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::vector<Rotated> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const std::string_view name = e->d_name;
    if (name.size() <= base.size() || !name.starts_with(base) || Compressed(name)) continue;
    Rotated r;
    r.path = absl::StrCat(dir, "/", std::string(name));
    if (stat(r.path.c_str(), &r.st) == 0 && S_ISREG(r.st.st_mode)) out.push_back(std::move(r));
  }
  closedir(d);
  return out;
}

bool Before(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec != b.tv_sec ? a.tv_sec < b.tv_sec : a.tv_nsec < b.tv_nsec;
}

}  // namespace

LogTailer::~LogTailer() {
  for (File& f : files_) close(f.fd);
}

absl::Status LogTailer::OpenPath(File& f) {
  f.fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) {
    return absl::UnavailableError(absl::StrCat("open ", path_, ": ", std::strerror(errno)));
  }
  struct stat st;
  fstat(f.fd, &st);
  f.dev = st.st_dev;
  f.ino = st.st_ino;
  f.name = path_;
  return absl::OkStatus();
}

absl::Status LogTailer::Start(const std::optional<Position>& saved) {
  File current;
  if (absl::Status s = OpenPath(current); !s.ok()) return s;
  const uint64_t size = SizeOf(current.fd);
  if (!saved.has_value()) {
    offset_ = size;
    files_.push_back(std::move(current));
    return absl::OkStatus();
  }
  if (saved->dev == current.dev && saved->ino == current.ino) {
    files_.push_back(std::move(current));
    Reset(saved->offset);
    return absl::OkStatus();
  }
  std::vector<Rotated> rotated = RotatedFiles(path_);
  auto found = std::find_if(rotated.begin(), rotated.end(), [&](const Rotated& r) {
    return r.st.st_dev == saved->dev && r.st.st_ino == saved->ino;
  });
  if (found == rotated.end()) {
    Say(absl::StrCat("the file of the saved position (inode ", saved->ino,
                     ") is gone: its records after offset ", saved->offset,
                     " cannot be sent; starting at the beginning of ", path_));
    files_.push_back(std::move(current));
    return absl::OkStatus();
  }
  // The saved file, then those rotated after it, oldest first, then the path's.
  const struct timespec since = found->st.st_mtim;
  std::vector<Rotated> chain;
  for (const Rotated& r : rotated) {
    const bool saved_file = &r == &*found;
    const bool later = Before(since, r.st.st_mtim) && r.st.st_ino != current.ino;
    if (saved_file || later) chain.push_back(r);
  }
  std::stable_sort(chain.begin(), chain.end(), [&](const Rotated& a, const Rotated& b) {
    if (a.st.st_ino == saved->ino) return b.st.st_ino != saved->ino;
    return Before(a.st.st_mtim, b.st.st_mtim);
  });
  for (const Rotated& r : chain) {
    File f;
    f.fd = open(r.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) continue;
    f.dev = r.st.st_dev;
    f.ino = r.st.st_ino;
    f.name = r.path;
    Queue(std::move(f), 0);  // not written any more: no grace
  }
  Queue(std::move(current), 0);
  Say(absl::StrCat("resuming in rotated file ", files_.front().name, " at offset ", saved->offset,
                   ", then ", files_.size() - 1, " newer file(s) up to ", path_));
  Reset(saved->offset);
  return absl::OkStatus();
}

void LogTailer::Reset(uint64_t offset) {
  const uint64_t size = SizeOf(files_.front().fd);
  if (offset > size) {
    Say(absl::StrCat(files_.front().name, " is shorter (", size, " bytes) than the saved offset ",
                     offset, " (truncated?): reading it again from its beginning"));
    offset = 0;
  }
  offset_ = offset;
  buffer_.clear();
  head_ = 0;
  line_size_ = 0;
  skipping_ = false;
}

void LogTailer::Queue(File f, uint64_t leave_at_ms) {
  if (!files_.empty()) files_.back().leave_at_ms = leave_at_ms;
  files_.push_back(std::move(f));
}

void LogTailer::Poll(uint64_t now_ms) {
  struct stat st;
  if (stat(path_.c_str(), &st) != 0) return;  // renamed, not reopened yet
  const File& newest = files_.back();
  if (st.st_dev == newest.dev && st.st_ino == newest.ino) return;
  if (files_.size() > kMaxQueuedFiles) return;  // caught up with later
  File f;
  if (!OpenPath(f).ok()) return;
  if (f.dev == newest.dev && f.ino == newest.ino) {
    close(f.fd);
    return;
  }
  Queue(std::move(f), now_ms + kRotationGraceMs);
}

bool LogTailer::Fill() {
  if (head_ > 0) {
    buffer_.erase(0, head_);
    head_ = 0;
  }
  const uint64_t at = offset_ + buffer_.size();
  const size_t old = buffer_.size();
  buffer_.resize(old + kReadChunkBytes);
  const ssize_t n =
      pread(files_.front().fd, buffer_.data() + old, kReadChunkBytes, static_cast<off_t>(at));
  buffer_.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
  if (n > 0) return true;
  if (n != 0) return false;
  if (SizeOf(files_.front().fd) < offset_) {
    Reset(offset_);  // truncated under us (copytruncate): from 0, reported
    return true;
  }
  // At EOF what is buffered is the start of a line still being written, or
  // a failed write's fragment that the log may cut back out (log_file.h)
  // and write over: never trusted past EOF, it is read again next time.
  buffer_.clear();
  return false;
}

bool LogTailer::Advance(uint64_t now_ms) {
  if (files_.size() < 2 || now_ms < files_.front().leave_at_ms) return false;
  const bool partial = buffer_.size() > head_ || skipping_;
  if (Fill()) return true;        // the old file grew in the grace: read that first
  if (partial) ++lines_skipped_;  // a torn last line
  close(files_.front().fd);
  files_.pop_front();
  offset_ = 0;
  buffer_.clear();
  head_ = 0;
  skipping_ = false;
  return true;
}

std::optional<std::string_view> LogTailer::Peek(uint64_t now_ms) {
  if (line_size_ > 0) return std::string_view(buffer_.data() + head_, line_size_ - 1);
  size_t scanned = 0;  // bytes past head_ known to hold no '\n'
  while (true) {
    const char* start = buffer_.data() + head_ + scanned;
    const size_t left = buffer_.size() - head_ - scanned;
    const void* nl = left == 0 ? nullptr : std::memchr(start, '\n', left);
    if (nl != nullptr) {
      const size_t size =
          static_cast<size_t>(static_cast<const char*>(nl) - (buffer_.data() + head_)) + 1;
      if (skipping_) {
        skipping_ = false;
        ++lines_skipped_;
        offset_ += size;
        head_ += size;
        scanned = 0;
        continue;
      }
      line_size_ = size;
      return std::string_view(buffer_.data() + head_, size - 1);
    }
    scanned = buffer_.size() - head_;
    if (scanned > kMaxLineBytes) {
      skipping_ = true;
      offset_ += scanned;
      head_ = buffer_.size();
      scanned = 0;
    }
    if (Fill()) {
      scanned = std::min(scanned, buffer_.size() - head_);
      continue;
    }
    if (!Advance(now_ms)) return std::nullopt;
    scanned = 0;
  }
}

void LogTailer::Consume() {
  offset_ += line_size_;
  head_ += line_size_;
  line_size_ = 0;
}

Position LogTailer::position() const {
  const File& f = files_.front();
  return Position{static_cast<uint64_t>(f.dev), static_cast<uint64_t>(f.ino), offset_};
}

uint64_t LogTailer::lag_bytes() const {
  uint64_t lag = 0;
  for (const File& f : files_) lag += SizeOf(f.fd);
  return lag > offset_ ? lag - offset_ : 0;
}

}  // namespace sluice::webhook
