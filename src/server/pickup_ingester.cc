#include "sluice/server/pickup_ingester.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "sluice/base/clock.h"
#include "sluice/base/strings.h"
#include "sluice/diag/diag.h"
#include "sluice/log/accounting_log.h"
#include "sluice/pickup/batch.h"
#include "sluice/pickup/message_parser.h"
#include "sluice/pickup/pickup_directory.h"
#include "sluice/server/shard.h"
#include "sluice/server/trace_headers.h"

namespace sluice::server {
namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(std::string(what), " ", path, ": ", std::strerror(errno)));
}

// A file name is ours to take unless it is hidden (".name": a producer's
// scratch file, as in Maildir) or not a single path component.
bool Takeable(std::string_view name) {
  return !name.empty() && name.front() != '.' && name.find('/') == std::string_view::npos;
}

// A batch directory: NAME.batch (docs/PICKUP.md).
bool IsBatchName(std::string_view name) {
  return Takeable(name) && name.size() > pickup::kBatchSuffix.size() &&
         name.substr(name.size() - pickup::kBatchSuffix.size()) == pickup::kBatchSuffix;
}

// Names are untrusted: keep what we print and log printable.
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 255)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out;
}

enum class ReadOutcome { kOk, kInvalid, kError };

// Reads a claimed file, or a file inside a claimed batch directory (`dir_fd`
// and a name): at most `max` bytes, with plain read(2) (the file is local
// and bounded; see the header). Symlinks are not followed: a producer must
// not make Sluice read other files. `what` names the file in reasons ("file"
// for a single message); `limit` names the limit. A missing file is invalid
// when `missing_is_invalid` (a batch without its manifest), else an error.
ReadOutcome ReadAt(int dir_fd, const std::string& name, size_t max, std::string_view what,
                   std::string_view limit, bool missing_is_invalid, std::string& out,
                   std::string& why) {
  int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ELOOP) {
      why = absl::StrCat(base::Av(what), ": a symbolic link, not a regular file");
      return ReadOutcome::kInvalid;
    }
    if (errno == ENOENT && missing_is_invalid) {
      why = absl::StrCat(base::Av(what), ": missing");
      return ReadOutcome::kInvalid;
    }
    why = absl::StrCat("open ", name, ": ", std::strerror(errno));
    return ReadOutcome::kError;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    why = absl::StrCat("stat ", name, ": ", std::strerror(errno));
    close(fd);
    return ReadOutcome::kError;
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    why = absl::StrCat(base::Av(what), ": not a regular file");
    return ReadOutcome::kInvalid;
  }
  if (static_cast<uint64_t>(st.st_size) > max) {
    close(fd);
    why = absl::StrCat(base::Av(what), ": file of ", st.st_size, " bytes exceeds the ",
                       base::Av(limit), " (", max, " bytes)");
    return ReadOutcome::kInvalid;
  }
  out.resize(static_cast<size_t>(st.st_size) + 1);
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      why = absl::StrCat("read ", name, ": ", std::strerror(errno));
      close(fd);
      return ReadOutcome::kError;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  out.resize(got);
  if (got > max) {
    why =
        absl::StrCat(base::Av(what), ": file exceeds the ", base::Av(limit), " (", max, " bytes)");
    return ReadOutcome::kInvalid;
  }
  return ReadOutcome::kOk;
}

ReadOutcome ReadClaimed(const std::string& path, size_t max, std::string& out, std::string& why) {
  return ReadAt(AT_FDCWD, path, max, "file", "message size limit", false, out, why);
}

}  // namespace

pickup::Limits MessageLimitsFor(const config::Config& config) {
  pickup::Limits limits;
  limits.max_message_size = config.max_message_size;
  limits.max_line_length = config.max_data_line_length;
  limits.max_recipients = config.max_recipients;
  limits.max_hops = config.max_hops;
  limits.require_from = config.require_from;
  return limits;
}

pickup::BatchLimits BatchLimitsFor(const config::Config& config) {
  pickup::BatchLimits limits;
  limits.max_template_size = config.max_message_size;
  limits.max_message_size = config.max_message_size;
  limits.max_line_length = config.max_data_line_length;
  limits.max_recipients = config.pickup_max_batch_recipients;
  limits.max_recipients_file_size = config.pickup_max_recipients_file_size;
  limits.require_from = config.require_from;
  limits.feedback_id_sender = config.pickup_feedback_id_sender;
  return limits;
}

// The unlink of a committed file's claimed copy, in flight.
struct PickupIngester::Release final : io::Completion {
  PickupIngester* self = nullptr;
  Item item;
  std::string sender;
  std::vector<std::string> recipients;
  uint64_t size = 0;
  void OnComplete(int result, uint32_t) override { self->OnReleased(this, result); }
};

struct PickupIngester::Batch {
  Item item;
  int dir_fd = -1;  // the claimed directory
  int csv_fd = -1;  // its recipients file
  pickup::BatchLimits limits;
  pickup::Manifest manifest;
  pickup::PreparedTemplate tmpl;
  std::unique_ptr<pickup::BatchBuilder> builder;
  uint64_t csv_bytes = 0;
  bool committing = false;
  uint64_t size = 0;  // of the stored body
  std::string chunk;

  ~Batch() { CloseFiles(); }
  void CloseFiles() {
    if (csv_fd >= 0) close(csv_fd);
    if (dir_fd >= 0) close(dir_fd);
    csv_fd = dir_fd = -1;
  }
};

PickupIngester::PickupIngester(Shard& shard, std::string dir)
    : shard_(shard),
      dir_(std::move(dir)),
      new_dir_(dir_ + "/new"),
      bad_dir_(dir_ + "/bad"),
      claimed_dir_(absl::StrCat(shard.config().spool_dir, "/", shard.index(), "/",
                                std::string(pickup::kClaimedDir))) {
  if (const char* at = std::getenv("SLUICE_TEST_ABORT_AT")) abort_at_ = at;
}

PickupIngester::~PickupIngester() {
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (bad_fd_ >= 0) close(bad_fd_);
}

absl::Status PickupIngester::Init() {
  // A blocking descriptor: io_uring waits for readiness itself (poll-armed
  // read), so the shard thread never blocks on it.
  inotify_fd_ = inotify_init1(IN_CLOEXEC);
  if (inotify_fd_ < 0) return Errno("inotify_init1 for", new_dir_);
  if (inotify_add_watch(inotify_fd_, new_dir_.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR) <
      0) {
    return Errno("inotify_add_watch", new_dir_);
  }
  bad_fd_ = open(bad_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (bad_fd_ < 0) return Errno("open", bad_dir_);
  return absl::OkStatus();
}

void PickupIngester::AdoptClaimed(std::vector<std::string> paths) {
  for (std::string& p : paths) {
    Item item;
    const size_t slash = p.rfind('/');
    item.claimed_name = p.substr(slash == std::string::npos ? 0 : slash + 1);
    item.name = item.claimed_name;  // the original name did not survive the crash
    item.claimed_path = std::move(p);
    reclaim_.push_back(std::move(item));
  }
}

void PickupIngester::Start() {
  ArmRead();
  Scan();
  next_scan_ms_ = shard_.now_ms() + uint64_t{shard_.config().pickup_scan_interval_s} * 1000;
}

void PickupIngester::Stop() {
  stopping_ = true;
  if (read_armed_) {
    io_uring_sqe* sqe = shard_.ring().Prepare(nullptr);
    io_uring_prep_cancel(sqe, &read_done_, 0);
  }
}

void PickupIngester::Tick(uint64_t now_ms) {
  if (stopping_ || now_ms < next_scan_ms_) return;
  next_scan_ms_ = now_ms + uint64_t{shard_.config().pickup_scan_interval_s} * 1000;
  Scan();
}

void PickupIngester::Scan() {
  for (Item& item : retry_) reclaim_.push_back(std::move(item));
  retry_.clear();
  DIR* d = opendir(new_dir_.c_str());
  if (d == nullptr) {
    const int err = errno;
    SLUICE_LOG(kError, "pickup.list_failed", "cannot list the pickup directory",
               {{"dir", new_dir_}, {"error", std::strerror(err)}});
    return;
  }
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    // A directory is taken only as a batch (NAME.batch); other directories
    // are left alone. Anything else that is not a regular file is claimed
    // and rejected ("not a regular file").
    if (e->d_type == DT_DIR && !IsBatchName(e->d_name)) continue;
    names.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());  // oldest first for time-based names
  for (std::string& n : names) Enqueue(std::move(n));
}

void PickupIngester::Enqueue(std::string name) {
  if (!Takeable(name) || queued_.contains(name)) return;
  queued_.insert(name);
  queue_.push_back(std::move(name));
}

void PickupIngester::ArmRead() {
  if (read_armed_ || stopping_ || inotify_fd_ < 0) return;
  io_uring_sqe* sqe = shard_.ring().Prepare(&read_done_);
  io_uring_prep_read(sqe, inotify_fd_, events_, sizeof events_, 0);
  read_armed_ = true;
}

void PickupIngester::OnRead(int result, uint32_t) {
  read_armed_ = false;
  if (result > 0) {
    size_t pos = 0;
    const size_t size = static_cast<size_t>(result);
    while (pos + sizeof(inotify_event) <= size) {
      inotify_event ev;
      std::memcpy(&ev, events_ + pos, sizeof ev);
      const size_t total = sizeof(inotify_event) + ev.len;
      if (pos + total > size) break;
      if (ev.mask & IN_Q_OVERFLOW) {
        Scan();  // events were lost: list the directory instead
      } else if (ev.len > 0) {
        const char* name = events_ + pos + sizeof(inotify_event);
        std::string n(name, strnlen(name, ev.len));
        // A batch directory arrives by rename (IN_MOVED_TO | IN_ISDIR).
        if (!(ev.mask & IN_ISDIR) || IsBatchName(n)) Enqueue(std::move(n));
      }
      pos += total;
    }
  } else if (result < 0 && result != -ECANCELED && result != -EINTR && result != -EAGAIN) {
    // The periodic scan keeps working without inotify.
    SLUICE_LOG(kWarning, "pickup.inotify_failed", "inotify read failed; relying on scans",
               {{"error", std::strerror(-result)}});
    return;
  }
  ArmRead();
}

bool PickupIngester::can_claim() const {
  if (stopping_ || !shard_.spool_available()) return false;
  return (!queue_.empty() || !reclaim_.empty()) && commits_in_flight_ < kMaxCommitsInFlight &&
         bytes_in_flight_ < kMaxBytesInFlight;
}

bool PickupIngester::has_work() const {
  if (stopping_ || !shard_.spool_available()) return false;
  if (batch_ ? !batch_->committing : !batches_waiting_.empty()) return true;
  return can_claim();
}

void PickupIngester::Pump() {
  if (!stopping_ && shard_.spool_available()) {
    if (!batch_ && !batches_waiting_.empty()) {
      Item next = std::move(batches_waiting_.front());
      batches_waiting_.pop_front();
      StartBatch(std::move(next));
    }
    if (batch_ && !batch_->committing) ContinueBatch();
  }
  size_t taken = 0;
  while (taken < kClaimsPerTurn && can_claim()) {
    ++taken;
    Item item;
    if (!reclaim_.empty()) {
      item = std::move(reclaim_.front());
      reclaim_.pop_front();
      item.id = shard_.NextQueueId();
    } else {
      std::string name = std::move(queue_.front());
      queue_.pop_front();
      queued_.erase(name);
      if (!Claim(name, item)) continue;
      MaybeAbort("after-claim");
    }
    Process(std::move(item));
  }
}

bool PickupIngester::Claim(const std::string& name, Item& item) {
  item.id = shard_.NextQueueId();
  item.name = name;
  item.claimed_name = item.id.ToString() + std::string(pickup::kClaimedSuffix);
  item.claimed_path = absl::StrCat(claimed_dir_, "/", item.claimed_name);
  const std::string from = absl::StrCat(new_dir_, "/", name);
  if (rename(from.c_str(), item.claimed_path.c_str()) != 0) {
    // ENOENT: another process (or an earlier event of ours) took it.
    if (errno != ENOENT) {
      const int err = errno;
      SLUICE_LOG(kWarning, "pickup.claim_failed", "cannot claim a pickup file",
                 {{"file", from}, {"error", std::strerror(err)}});
    }
    return false;
  }
  return true;
}

void PickupIngester::Process(Item item) {
  struct stat st;
  if (lstat(item.claimed_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    // A batch: read over several turns, one batch at a time.
    if (batch_) {
      batches_waiting_.push_back(std::move(item));
    } else {
      StartBatch(std::move(item));
    }
    return;
  }
  const config::Config& config = shard_.config();
  std::string bytes;
  std::string why;
  switch (ReadClaimed(item.claimed_path, config.max_message_size, bytes, why)) {
    case ReadOutcome::kInvalid:
      return Reject(item, why);
    case ReadOutcome::kError:
      // An I/O error is not the file's fault: keep it claimed, try again.
      SLUICE_LOG(kWarning, "pickup.read_failed", "cannot read a claimed file; will retry",
                 {{"error", why}});
      retry_.push_back(std::move(item));
      return;
    case ReadOutcome::kOk:
      break;
  }
  pickup::Result parsed = pickup::ParseMessage(bytes, MessageLimitsFor(config));
  bytes.clear();
  bytes.shrink_to_fit();
  if (!parsed.ok) return Reject(item, parsed.error.ToString());
  pickup::Message& msg = parsed.message;

  const uint64_t now = base::WallMicros();
  const std::string id = item.id.ToString();
  TraceFacts trace;
  trace.with = "local (pickup)";
  trace.hostname = config.hostname;
  trace.queue_id = id;
  trace.recipients = &msg.recipients;
  trace.arrival_micros = now;
  trace.has_date = msg.has_date;
  trace.has_message_id = msg.has_message_id;
  std::string headers = TraceHeaders(trace);

  spool::Envelope env;
  env.arrival_micros = now;
  env.protocol = "pickup";
  env.sender = msg.sender;
  env.eight_bit = msg.eight_bit;
  env.smtputf8 = msg.smtputf8;
  env.added_headers = std::move(headers);
  env.origin = item.claimed_name;
  env.recipients.reserve(msg.recipients.size());
  for (const std::string& r : msg.recipients) env.recipients.push_back(spool::Recipient{r});
  const uint64_t size = msg.body.size();

  spool::SpoolWriter& spool = shard_.spool();
  spool::SpoolWriter::Message* m = spool.Begin(item.id);
  spool.AppendOwned(m, std::move(msg.body));
  ++commits_in_flight_;
  bytes_in_flight_ += size;
  spool.Commit(m, std::move(env),
               [this, item = std::move(item), sender = std::move(msg.sender),
                recipients = std::move(msg.recipients), size](const absl::Status& status) mutable {
                 OnCommitted(item, status, std::move(sender), std::move(recipients), size);
               });
}

void PickupIngester::OnCommitted(const Item& item, const absl::Status& status, std::string sender,
                                 std::vector<std::string> recipients, uint64_t size) {
  --commits_in_flight_;
  bytes_in_flight_ -= size;
  if (!status.ok()) {
    ++shard_.stats().messages_failed;
    SLUICE_LOG(kError, "pickup.commit_failed", "spool commit failed; will retry",
               {{"file", item.claimed_name}, {"error", status.message()}});
    retry_.push_back(item);
    return;
  }
  MaybeAbort("after-commit");
  // Durable now: the claimed copy can go. The unlink runs on io_uring's
  // workers (it costs tens of microseconds on a busy journal, which capped
  // shard 0 near 10,000 files/s when done here); the message is announced
  // only once it completed, so delivery can never retire the record while
  // its claimed file still exists. If the unlink is lost in a crash,
  // recovery finds the origin in the spool and removes the file.
  auto* release = new Release();
  release->self = this;
  release->item = item;
  release->sender = std::move(sender);
  release->recipients = std::move(recipients);
  release->size = size;
  io_uring_sqe* sqe = shard_.ring().Prepare(release);
  io_uring_prep_unlinkat(sqe, AT_FDCWD, release->item.claimed_path.c_str(), 0);
  ++releases_in_flight_;
}

void PickupIngester::OnReleased(Release* release, int result) {
  std::unique_ptr<Release> owned(release);
  --releases_in_flight_;
  const Item& item = release->item;
  if (result < 0 && result != -ENOENT) {
    SLUICE_LOG(kWarning, "pickup.remove_failed", "cannot remove a queued claimed file",
               {{"file", item.claimed_path}, {"error", std::strerror(-result)}});
  }
  ++shard_.stats().messages_queued;
  const std::string id = item.id.ToString();
  log::ReceptionRecord r;
  r.ts_micros = base::WallMicros();
  r.id = id;
  r.sender = release->sender;
  r.recipients = &release->recipients;
  r.size = release->size;
  r.client = "";
  r.helo = "";
  r.protocol = "pickup";
  shard_.accounting().Reception(r);
  shard_.AnnounceQueued(item.id, release->recipients);
}

std::string PickupIngester::BadName(const Item& item) const {
  std::string bad_name = item.name;
  struct stat st;
  if (fstatat(bad_fd_, bad_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 ||
      fstatat(bad_fd_, (bad_name + ".error").c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    bad_name = absl::StrCat(bad_name, ".", item.id.ToString());  // never overwrite
  }
  return bad_name;
}

void PickupIngester::Reject(const Item& item, const std::string& reason) {
  const std::string bad_path = absl::StrCat(bad_dir_, "/", BadName(item));
  // The note first: a crash between the two steps leaves the file claimed,
  // it is processed again and the note rewritten.
  absl::Status s = pickup::WriteFileSynced(bad_path + ".error", reason + "\n");
  if (s.ok() && rename(item.claimed_path.c_str(), bad_path.c_str()) != 0) {
    s = Errno("rename to", bad_path);
  }
  if (s.ok() && fsync(bad_fd_) != 0) s = Errno("fsync", bad_dir_);
  if (!s.ok()) {
    // Nothing is lost: the file stays in claimed/ and is processed again
    // at the next start.
    SLUICE_LOG(kError, "pickup.bad_file_unmovable",
               "rejected a file but cannot move it to the bad directory; left claimed",
               {{"file", item.name},
                {"reason", reason},
                {"bad_dir", bad_dir_},
                {"error", s.message()},
                {"left_as", item.claimed_path}});
    return;
  }
  SLUICE_LOG(kWarning, "pickup.bad_file", "rejected a pickup file; moved to the bad directory",
             {{"file", item.name}, {"reason", reason}});
  log::RejectionRecord r;
  r.ts_micros = base::WallMicros();
  r.source = "pickup";
  r.file = item.name;
  r.reason = reason;
  shard_.accounting().Rejection(r);
}

// ---------------------------------------------------------------------------
// Batches

void PickupIngester::StartBatch(Item item) {
  const config::Config& config = shard_.config();
  auto b = std::make_unique<Batch>();
  b->item = std::move(item);
  const Item& it = b->item;
  b->limits = BatchLimitsFor(config);
  b->dir_fd = open(it.claimed_path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (b->dir_fd < 0) {
    const int err = errno;
    SLUICE_LOG(kWarning, "pickup.batch_open_failed", "cannot open a batch; will retry",
               {{"batch", it.claimed_path}, {"error", std::strerror(err)}});
    retry_.push_back(std::move(b->item));
    return;
  }
  // The manifest and the template: small, read and checked at once.
  std::string bytes, why;
  const std::string manifest_name(pickup::kManifestName);
  auto read = [&](const std::string& name, size_t max, std::string_view limit) {
    return ReadAt(b->dir_fd, name, max, name, limit, true, bytes, why);
  };
  ReadOutcome got = read(manifest_name, b->limits.max_manifest_size, "manifest size limit");
  if (got == ReadOutcome::kOk) {
    pickup::BatchError e;
    if (!pickup::ParseManifest(bytes, b->limits, b->manifest, e)) {
      why = e.ToString();
      got = ReadOutcome::kInvalid;
    }
  }
  if (got == ReadOutcome::kOk) {
    got = read(b->manifest.template_file, b->limits.max_template_size, "message size limit");
  }
  if (got == ReadOutcome::kOk) {
    pickup::BatchError e;
    if (!pickup::PrepareTemplate(b->manifest.template_file, bytes, b->limits, b->tmpl, e,
                                 &b->manifest)) {
      why = e.ToString();
      got = ReadOutcome::kInvalid;
    }
  }
  if (got == ReadOutcome::kOk) {
    // The recipients file: opened now, read kBatchBytesPerTurn per turn.
    const std::string& name = b->manifest.recipients_file;
    b->csv_fd = openat(b->dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (b->csv_fd < 0) {
      why = errno == ELOOP    ? absl::StrCat(name, ": a symbolic link, not a regular file")
            : errno == ENOENT ? absl::StrCat(name, ": missing")
                              : absl::StrCat("open ", name, ": ", std::strerror(errno));
      got = errno == ELOOP || errno == ENOENT ? ReadOutcome::kInvalid : ReadOutcome::kError;
    } else if (fstat(b->csv_fd, &st) != 0) {
      why = absl::StrCat("stat ", name, ": ", std::strerror(errno));
      got = ReadOutcome::kError;
    } else if (!S_ISREG(st.st_mode)) {
      why = absl::StrCat(name, ": not a regular file");
      got = ReadOutcome::kInvalid;
    } else if (static_cast<uint64_t>(st.st_size) > b->limits.max_recipients_file_size) {
      why = absl::StrCat(name, ": file of ", st.st_size, " bytes exceeds the limit (",
                         b->limits.max_recipients_file_size, " bytes)");
      got = ReadOutcome::kInvalid;
    }
  }
  bytes.clear();
  bytes.shrink_to_fit();
  switch (got) {
    case ReadOutcome::kInvalid:
      b->CloseFiles();
      return Reject(b->item, why);
    case ReadOutcome::kError:
      SLUICE_LOG(kWarning, "pickup.batch_read_failed", "cannot read a batch; will retry",
                 {{"batch", b->item.name}, {"error", why}});
      retry_.push_back(std::move(b->item));
      return;
    case ReadOutcome::kOk:
      break;
  }
  b->builder = std::make_unique<pickup::BatchBuilder>(b->tmpl, b->manifest.template_file,
                                                      b->manifest.recipients_file, b->limits);
  b->chunk.resize(kBatchBytesPerTurn);
  batch_ = std::move(b);
}

void PickupIngester::ContinueBatch() {
  Batch& b = *batch_;
  size_t got = 0;
  bool eof = false;
  while (got < b.chunk.size()) {
    ssize_t n = read(b.csv_fd, b.chunk.data() + got, b.chunk.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      SLUICE_LOG(kWarning, "pickup.batch_read_failed", "cannot read a batch; will retry",
                 {{"batch", b.item.name},
                  {"file", b.manifest.recipients_file},
                  {"error", std::strerror(err)}});
      retry_.push_back(std::move(b.item));
      return EndBatch();
    }
    if (n == 0) {
      eof = true;
      break;
    }
    got += static_cast<size_t>(n);
  }
  const bool first = b.csv_bytes == 0;
  b.csv_bytes += got;
  if (b.csv_bytes > b.limits.max_recipients_file_size) {
    // It grew after the claim: a producer still writing into it.
    Reject(b.item, absl::StrCat(b.manifest.recipients_file, ": file exceeds the limit (",
                                b.limits.max_recipients_file_size, " bytes)"));
    return EndBatch();
  }
  bool ok = b.builder->Feed(std::string_view(b.chunk.data(), got));
  if (ok && first && !eof) MaybeAbort("batch-mid-csv");
  if (ok && eof) ok = b.builder->Finish();
  if (!ok) {
    Reject(b.item, b.builder->error().ToString());
    return EndBatch();
  }
  if (eof) CommitBatch();
}

void PickupIngester::CommitBatch() {
  Batch& b = *batch_;
  const config::Config& config = shard_.config();
  pickup::BatchBuilder& builder = *b.builder;
  b.CloseFiles();
  b.chunk.clear();
  b.chunk.shrink_to_fit();
  const std::string id = b.item.id.ToString();
  // Skipped rows are reported before the commit: a crash after it must not
  // lose the report (a crash before it reports them again, under the
  // claimed name; docs/PICKUP.md).
  if (builder.skipped() > 0) {
    std::string note;
    for (const std::string& line : builder.notes()) absl::StrAppend(&note, Printable(line), "\n");
    if (builder.skipped() > builder.notes().size()) {
      absl::StrAppend(&note, "... and ", builder.skipped() - builder.notes().size(),
                      " more rows skipped (only the first ", builder.notes().size(),
                      " are listed)\n");
    }
    absl::StrAppend(&note, "batch accepted: ", builder.accepted(), " recipients queued, ",
                    builder.skipped(), " rows of ", b.manifest.recipients_file, " skipped\n");
    const std::string path = absl::StrCat(bad_dir_, "/", BadName(b.item), ".error");
    absl::Status s = pickup::WriteFileSynced(path, note);
    if (s.ok() && fsync(bad_fd_) != 0) s = Errno("fsync", bad_dir_);
    if (!s.ok()) {
      // The valid recipients are not held back for a report: it goes to
      // stderr instead.
      SLUICE_LOG(
          kError, "pickup.batch_report_not_written",
          "cannot write the skipped-rows report; it is in this line",
          {{"batch", b.item.name}, {"file", path}, {"error", s.message()}, {"skipped_rows", note}});
    }
  }
  const uint64_t now = base::WallMicros();
  TraceFacts trace;
  trace.with = "local (pickup)";
  trace.hostname = config.hostname;
  trace.queue_id = id;
  trace.arrival_micros = now;
  trace.has_date = b.tmpl.has_date;
  // A merged message is one message per recipient, so each needs its own
  // Message-ID; delivery adds it (spool::Envelope::message_id_host).
  const bool per_recipient_id = !b.tmpl.has_message_id && b.tmpl.compiled.has_placeholders();
  trace.has_message_id = b.tmpl.has_message_id || per_recipient_id;

  spool::Envelope env;
  env.arrival_micros = now;
  env.protocol = "pickup";
  env.sender = b.manifest.sender;
  env.eight_bit = b.tmpl.eight_bit || builder.eight_bit();
  env.smtputf8 = b.manifest.smtputf8 || builder.smtputf8();
  env.added_headers = TraceHeaders(trace);
  env.origin = b.item.claimed_name;
  env.campaign = b.manifest.campaign;
  env.tenant = b.manifest.tenant;
  if (b.tmpl.compiled.has_placeholders()) env.merge_fields = b.tmpl.compiled.fields;
  if (per_recipient_id) env.message_id_host = config.hostname;
  env.packed_count = builder.accepted();
  env.packed_recipients = builder.TakePacked();
  b.size = b.tmpl.stored.size();

  spool::SpoolWriter& spool = shard_.spool();
  spool::SpoolWriter::Message* m = spool.Begin(b.item.id);
  spool.AppendOwned(m, std::move(b.tmpl.stored));
  b.committing = true;
  ++commits_in_flight_;
  spool.Commit(m, std::move(env), [this](const absl::Status& status) { OnBatchCommitted(status); });
}

void PickupIngester::OnBatchCommitted(const absl::Status& status) {
  --commits_in_flight_;
  Batch& b = *batch_;
  if (!status.ok()) {
    ++shard_.stats().messages_failed;
    SLUICE_LOG(kError, "pickup.commit_failed", "spool commit of a batch failed; will retry",
               {{"batch", b.item.claimed_name}, {"error", status.message()}});
    retry_.push_back(std::move(b.item));
    return EndBatch();
  }
  MaybeAbort("after-commit");
  ReleaseBatch(b.item);
  ++shard_.stats().messages_queued;
  const std::string id = b.item.id.ToString();
  const std::vector<std::string_view> addresses = b.builder->Addresses();
  log::ReceptionRecord r;
  r.ts_micros = base::WallMicros();
  r.id = id;
  r.sender = b.manifest.sender;
  r.recipient_views = &addresses;
  r.size = b.size;
  r.client = "";
  r.helo = "";
  r.protocol = "pickup";
  r.campaign = b.manifest.campaign;
  r.tenant = b.manifest.tenant;
  r.skipped = b.builder->skipped();
  shard_.accounting().Reception(r);
  shard_.AnnounceQueued(b.item.id, addresses);
  SLUICE_LOG(kInfo, "pickup.batch_queued", "batch queued",
             {{"batch", b.item.name},
              {"id", id},
              {"recipients", b.builder->accepted()},
              {"rows_skipped", b.builder->skipped()}});
  EndBatch();
}

void PickupIngester::ReleaseBatch(const Item& item) {
  // Renamed first, in one step: from here on recovery removes whatever is
  // left without looking for its record (which delivery may retire).
  const std::string done = item.claimed_path + std::string(pickup::kReleasedSuffix);
  if (rename(item.claimed_path.c_str(), done.c_str()) != 0) {
    const int err = errno;
    SLUICE_LOG(kWarning, "pickup.rename_failed",
               "cannot rename a finished batch; removed at the next start",
               {{"file", item.claimed_path}, {"error", std::strerror(err)}});
    return;  // start-up recovery finds the record's origin and removes it
  }
  if (abort_at_ == "batch-mid-release") {
    (void)unlink(absl::StrCat(done, "/", base::Av(pickup::kManifestName)).c_str());
    MaybeAbort("batch-mid-release");
  }
  if (absl::Status s = pickup::RemoveTree(done); !s.ok()) {
    SLUICE_LOG(kWarning, "pickup.remove_failed",
               "cannot remove a finished batch; removed at the next start",
               {{"file", done}, {"error", s.message()}});
  }
}

void PickupIngester::EndBatch() { batch_.reset(); }

void PickupIngester::MaybeAbort(const char* point) const {
  if (!abort_at_.empty() && abort_at_ == point) {
    // Written at once, whatever the shard's buffer holds: the process ends next.
    SLUICE_LOG_NOW(kError, "pickup.test_abort",
                   absl::StrCat("test hook: SLUICE_TEST_ABORT_AT=", point, ": aborting"));
    std::abort();
  }
}

}  // namespace sluice::server
