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
#include "little_endian.h"
#include "segment_map.h"
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

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      if (fd_ >= 0) close(fd_);
      fd_ = other.fd_;
      other.fd_ = -1;
    }
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Different copies of one span kept in corrupt/ (each later damage of the
// same bytes is one more); past this, recovery stops with an error rather
// than overwrite one.
constexpr int kMaxCopiesOfOneSpan = 1000;

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

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Errno("open", path);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Errno("stat", path);
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  if (!PReadAll(fd.get(), bytes.data(), bytes.size(), 0)) return Errno("read", path);
  return bytes;
}

// Footer and envelope only: enough to list and queue a message file.
absl::StatusOr<Envelope> ReadHead(const std::string& path, const DecodeOptions& options) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Errno("open", path);
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return Errno("stat", path);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < kPreambleSize + kFooterSize) return absl::DataLossError("file too short");
  std::string footer_bytes(kFooterSize, '\0');
  if (!PReadAll(fd.get(), footer_bytes.data(), kFooterSize, size - kFooterSize)) {
    return Errno("read", path);
  }
  auto footer = DecodeFooter(footer_bytes);
  if (!footer.ok()) return footer.status();
  if (footer->envelope_offset < kPreambleSize || footer->envelope_offset > size - kFooterSize ||
      footer->envelope_size != size - kFooterSize - footer->envelope_offset) {
    return absl::DataLossError("footer points outside the file");
  }
  std::string env(footer->envelope_size, '\0');
  if (!PReadAll(fd.get(), env.data(), env.size(), footer->envelope_offset)) {
    return Errno("read", path);
  }
  if (base::Crc32c(0, env.data(), env.size()) != footer->envelope_crc) {
    return absl::DataLossError("envelope checksum mismatch");
  }
  auto envelope = DecodeEnvelope(env, options);
  if (!envelope.ok()) return envelope.status();
  if (envelope->body_size + kPreambleSize != footer->envelope_offset) {
    return absl::DataLossError("body size mismatch");
  }
  envelope->body_crc = footer->body_crc;
  return envelope;
}

bool IsShardDirectoryName(const char* name, int& number) {
  uint64_t n = 0;
  if (!base::ParseUint64(name, n) || n > 1'000'000) return false;
  number = static_cast<int>(n);
  return true;
}

std::vector<int> ShardDirectories(const std::string& root, absl::Status& status) {
  std::vector<int> dirs;
  DIR* top = opendir(root.c_str());
  if (top == nullptr) {
    status = Errno("opendir", root);
    return dirs;
  }
  while (dirent* d = readdir(top)) {
    int number;
    if (IsShardDirectoryName(d->d_name, number)) dirs.push_back(number);
  }
  closedir(top);
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

void WriteNote(const std::string& path, std::string_view text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  std::string line = std::string(text) + "\n";
  (void)!write(fd, line.data(), line.size());
  fsync(fd);
  close(fd);
}

// Writes `piece` durably to "<stem>.rec", or "<stem>-<n>.rec" when that
// exists: an earlier copy is never replaced (the same span, damaged again
// later). A copy already there with the same bytes is kept as it is.
absl::StatusOr<std::string> CopyAside(const std::string& stem, std::string_view piece) {
  for (int n = 1; n <= kMaxCopiesOfOneSpan; ++n) {
    const std::string target = n == 1 ? stem + ".rec" : absl::StrCat(stem, "-", n, ".rec");
    Fd out(open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (out.get() < 0) {
      if (errno != EEXIST) return Errno("open", target);
      auto existing = ReadWhole(target);
      if (existing.ok() && *existing == piece) return target;
      continue;
    }
    if (write(out.get(), piece.data(), piece.size()) != static_cast<ssize_t>(piece.size()) ||
        fsync(out.get()) != 0) {
      return Errno("write", target);
    }
    return target;
  }
  return absl::ResourceExhaustedError(
      absl::StrCat(kMaxCopiesOfOneSpan, " different copies of ", stem, ".rec in corrupt/"));
}

// Opens `path` for writing, writes `bytes` at `offset`, makes it durable.
absl::Status WriteAt(const std::string& path, std::string_view bytes, uint64_t offset) {
  Fd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (fd.get() < 0 ||
      pwrite(fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset)) !=
          static_cast<ssize_t>(bytes.size()) ||
      fdatasync(fd.get()) != 0) {
    return Errno("write", path);
  }
  return absl::OkStatus();
}

// Acts on one segment's map (segment_map.h). With `repair`: the unfinished
// tail is cut (an emptied segment removed), a damaged preamble of a
// verified record rewritten, and whatever does not verify copied to
// corrupt/ and then neutralised in place by a retired preamble spanning it.
class SegmentScanner {
 public:
  SegmentScanner(const std::string& root, int dir, std::string path, std::string name, bool newest,
                 const ScanOptions& options, RecoveryReport& report)
      : root_(root),
        dir_(dir),
        path_(std::move(path)),
        name_(std::move(name)),
        newest_(newest),
        options_(options),
        report_(report) {}

  absl::Status Run() {
    auto bytes = ReadWhole(path_);
    if (!bytes.ok()) return bytes.status();
    if (bytes->empty()) {  // a segment created and never written to
      ++report_.counts.empty_segments;
      return RemoveSegment();
    }
    std::vector<SegmentSpan> spans =
        MapSegment(*bytes, newest_, DecodeOptions{options_.merge_values});
    if (std::all_of(spans.begin(), spans.end(),
                    [](const SegmentSpan& s) { return s.kind == SpanKind::kRetired; })) {
      // Every record delivered (or set aside, its copy in corrupt/): the
      // ledger removes such a segment while it runs, but not one whose
      // last record was retired before a stop (it was still current).
      ++report_.counts.retired_segments;
      return RemoveSegment();
    }
    for (SegmentSpan& span : spans) {
      if (auto s = Act(*bytes, span); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  bool changed() const { return changed_; }

 private:
  absl::Status Act(std::string_view bytes, SegmentSpan& span) {
    switch (span.kind) {
      case SpanKind::kRetired:
        return absl::OkStatus();
      case SpanKind::kRepairable:
        ++report_.counts.repaired_preambles;
        if (options_.repair) {
          if (auto s = WriteAt(path_, EncodePreamble(span.length), span.offset); !s.ok()) return s;
        }
        [[fallthrough]];
      case SpanKind::kQueued:
        Queue(span);
        return absl::OkStatus();
      case SpanKind::kDamaged:
        ++report_.counts.damaged_records;
        return SetAside(bytes, span);
      case SpanKind::kUnreadable:
        ++report_.counts.unreadable_spans;
        return SetAside(bytes, span);
      case SpanKind::kUnfinished:
        return CutTail(span.offset);
    }
    return absl::OkStatus();
  }

  void Queue(SegmentSpan& span) {
    if (span.envelope.id > report_.newest) report_.newest = span.envelope.id;
    QueuedMessage m;
    m.where = RecordLocation{path_, span.offset, span.length};
    m.directory = dir_;
    m.envelope = std::move(span.envelope);
    report_.messages.push_back(std::move(m));
  }

  absl::Status RemoveSegment() {
    if (!options_.repair) return absl::OkStatus();
    if (unlink(path_.c_str()) != 0) return Errno("unlink", path_);
    changed_ = true;
    return absl::OkStatus();
  }

  // An unfinished, never acknowledged write at the newest segment's end.
  absl::Status CutTail(uint64_t offset) {
    ++report_.counts.unfinished_tails;
    ++report_.temporary_removed;
    if (!options_.repair) return absl::OkStatus();
    if (offset == 0) return RemoveSegment();
    if (truncate(path_.c_str(), static_cast<off_t>(offset)) != 0) return Errno("truncate", path_);
    changed_ = true;
    return absl::OkStatus();
  }

  // Copies the span to corrupt/ (durably, with its note), then neutralises
  // it in place, so it is never delivered and never lost.
  absl::Status SetAside(std::string_view bytes, const SegmentSpan& span) {
    report_.corrupt.push_back(absl::StrCat(path_, "@", span.offset, ": ", span.why));
    if (!options_.repair) return absl::OkStatus();
    const std::string stem = absl::StrCat(root_, "/corrupt/", dir_, "-", name_, "-", span.offset);
    const std::string_view piece = bytes.substr(span.offset, span.length);
    auto target = CopyAside(stem, piece);
    if (!target.ok()) return target.status();
    WriteNote(*target + ".why", absl::StrCat(span.why, " (", path_, " at ", span.offset, ", ",
                                             span.length, " bytes)"));
    if (auto s = FsyncPath(root_ + "/corrupt"); !s.ok()) return s;
    changed_ = true;
    if (span.length >= kPreambleSize) {
      std::string retired(kTombstone);
      PutU64(retired, span.length);
      return WriteAt(path_, retired, span.offset);
    }
    // Too short for a preamble: at the end it goes (its copy is kept);
    // elsewhere it stays and is set aside again by the next scan.
    if (span.offset + span.length == bytes.size() &&
        truncate(path_.c_str(), static_cast<off_t>(span.offset)) != 0) {
      return Errno("truncate", path_);
    }
    return absl::OkStatus();
  }

  const std::string& root_;
  const int dir_;
  const std::string path_;
  const std::string name_;
  const bool newest_;
  const ScanOptions& options_;
  RecoveryReport& report_;
  bool changed_ = false;
};

}  // namespace

// mkdir -p: the default spool (./var/spool) lives under a directory that
// may not exist yet.
static absl::Status MakeDirs(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    if (auto s = MakeDir(path.substr(0, slash)); !s.ok()) return s;
  }
  return MakeDir(path);
}

absl::Status PrepareSpool(const std::string& root, int shards) {
  if (auto s = MakeDirs(root); !s.ok()) return s;
  for (int i = 0; i < shards; ++i) {
    if (auto s = MakeDir(absl::StrCat(root, "/", i)); !s.ok()) return s;
  }
  if (auto s = MakeDir(root + "/corrupt"); !s.ok()) return s;
  return FsyncPath(root);
}

std::string DescribeCounts(const RecoveryCounts& c) {
  return absl::StrCat(
      "unfinished_tails=", c.unfinished_tails, " temporary_files=", c.temporary_files,
      " empty_segments=", c.empty_segments, " retired_segments=", c.retired_segments,
      " repaired_preambles=", c.repaired_preambles, " damaged_records=", c.damaged_records,
      " unreadable_spans=", c.unreadable_spans, " damaged_message_files=", c.damaged_message_files);
}

absl::StatusOr<std::string> ReadRecord(const RecordLocation& where) {
  if (where.length == 0) return ReadWhole(where.path);
  Fd fd(open(where.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return Errno("open", where.path);
  std::string bytes(where.length, '\0');
  if (!PReadAll(fd.get(), bytes.data(), bytes.size(), where.offset)) {
    return Errno("read", where.path);
  }
  return bytes;
}

namespace {

absl::StatusOr<std::vector<std::string>> SortedNames(const std::string& dir) {
  DIR* dp = opendir(dir.c_str());
  if (dp == nullptr) return Errno("opendir", dir);
  std::vector<std::string> names;
  while (dirent* d = readdir(dp)) {
    if (d->d_name[0] != '.') names.emplace_back(d->d_name);
  }
  closedir(dp);
  std::sort(names.begin(), names.end());
  return names;
}

// Only the newest segment can end in an unfinished write: the writer opens
// a new segment (a higher id) only after the previous one's writes
// completed, and every start opens a new one.
std::string NewestSegment(const std::vector<std::string>& sorted_names) {
  std::string newest;
  for (const std::string& name : sorted_names) {
    if (name.size() == base::QueueId::kTextSize + 4 && name.ends_with(".seg") &&
        base::QueueId::Parse(std::string_view(name).substr(0, base::QueueId::kTextSize))) {
      newest = name;
    }
  }
  return newest;
}

// One "<id>.msg": queued, its preamble repaired, or moved to corrupt/.
absl::Status ScanMessageFile(const std::string& root, int number, const std::string& path,
                             const std::string& name, base::QueueId id, const ScanOptions& options,
                             RecoveryReport& report, bool& changed) {
  const DecodeOptions decode{options.merge_values};
  absl::StatusOr<Envelope> envelope = ReadHead(path, decode);
  if (envelope.ok() && options.verify_body) {
    auto bytes = ReadWhole(path);
    if (!bytes.ok()) {
      envelope = bytes.status();
    } else if (auto parsed = ParseFile(*bytes, decode); !parsed.ok()) {
      // Everything the CRCs cover verifies: only the preamble (which no
      // CRC covers, and a message file is never retired in place) is
      // damaged. Rewrite it rather than set the message aside.
      if (ParseRecordContent(*bytes, decode).ok()) {
        ++report.counts.repaired_preambles;
        if (options.repair) {
          if (auto s = WriteAt(path, EncodePreamble(0), 0); !s.ok()) return s;
        }
      } else {
        envelope = parsed.status();
      }
    }
  }
  if (envelope.ok() && envelope->id != id) {
    envelope = absl::DataLossError("id does not match file name");
  }
  if (!envelope.ok()) {
    report.corrupt.push_back(absl::StrCat(path, ": ", envelope.status().message()));
    ++report.counts.damaged_message_files;
    if (options.repair) {
      const std::string target = absl::StrCat(root, "/corrupt/", number, "-", name);
      if (rename(path.c_str(), target.c_str()) != 0) return Errno("rename", path);
      WriteNote(target + ".why", base::Sv(envelope.status().message()));
      changed = true;
    }
    return absl::OkStatus();
  }
  QueuedMessage m;
  m.where = RecordLocation{path, 0, 0};
  m.directory = number;
  m.envelope = std::move(*envelope);
  report.messages.push_back(std::move(m));
  return absl::OkStatus();
}

absl::Status ScanDirectory(const std::string& root, int number, const ScanOptions& options,
                           RecoveryReport& report) {
  const std::string dir = absl::StrCat(root, "/", number);
  auto names = SortedNames(dir);
  if (!names.ok()) return names.status();
  const std::string newest_segment = NewestSegment(*names);
  bool changed = false;
  for (const std::string& name : *names) {
    const std::string path = absl::StrCat(dir, "/", name);
    const std::string_view stem = std::string_view(name).substr(0, base::QueueId::kTextSize);
    const std::string_view ext = std::string_view(name).substr(std::min(name.size(), stem.size()));
    auto id = base::QueueId::Parse(stem);
    if (!id) continue;  // not ours; leave it alone
    if (*id > report.newest) report.newest = *id;
    if (ext == ".seg") {
      SegmentScanner scanner(root, number, path, name, name == newest_segment, options, report);
      if (auto s = scanner.Run(); !s.ok()) return s;
      changed |= scanner.changed();
    } else if (ext == ".tmp") {
      // An unfinished write: it was never acknowledged.
      if (options.repair) {
        if (unlink(path.c_str()) != 0) return Errno("unlink", path);
        changed = true;
      }
      ++report.temporary_removed;
      ++report.counts.temporary_files;
    } else if (ext == ".msg") {
      if (auto s = ScanMessageFile(root, number, path, name, *id, options, report, changed);
          !s.ok()) {
        return s;
      }
    }
  }
  if (changed && options.repair) {
    if (auto s = FsyncPath(dir); !s.ok()) return s;
    if (auto s = FsyncPath(root + "/corrupt"); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RecoveryReport> ScanSpool(const std::string& root, const ScanOptions& options) {
  RecoveryReport report;
  absl::Status status;
  report.directories = ShardDirectories(root, status);
  if (!status.ok()) return status;
  for (int number : report.directories) {
    if (auto s = ScanDirectory(root, number, options, report); !s.ok()) return s;
  }
  std::sort(
      report.messages.begin(), report.messages.end(),
      [](const QueuedMessage& a, const QueuedMessage& b) { return a.envelope.id < b.envelope.id; });
  return report;
}

absl::StatusOr<RecordLocation> FindMessage(const std::string& root, base::QueueId id) {
  absl::Status status;
  std::vector<int> dirs = ShardDirectories(root, status);
  if (!status.ok()) return status;
  for (int number : dirs) {
    std::string path = absl::StrCat(root, "/", number, "/", MessageFileName(id));
    if (access(path.c_str(), F_OK) == 0) return RecordLocation{path, 0, 0};
  }
  // Segments: a read-only scan.
  auto report = ScanSpool(root, ScanOptions{});
  if (!report.ok()) return report.status();
  for (const QueuedMessage& m : report->messages) {
    if (m.envelope.id == id) return m.where;
  }
  return absl::NotFoundError(absl::StrCat("no queued message ", id.ToString()));
}

}  // namespace sluice::spool
