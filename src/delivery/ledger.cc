#include "sluice/delivery/ledger.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/check.h"
#include "sluice/diag/diag.h"
#include "sluice/spool/journal.h"
#include "sluice/spool/spool_directory.h"

namespace sluice::delivery {
namespace {

constexpr uint64_t kJournalRotateBytes = 4ull << 20;
// Tombstones are made durable together: at most this late, or this many at once.
constexpr uint64_t kTombstoneSyncMs = 100;
constexpr size_t kTombstoneBatch = 16384;

bool IsSegment(std::string_view name) {
  return name.size() > 4 && name.substr(name.size() - 4) == ".seg";
}

}  // namespace

struct Ledger::File {
  std::string path;
  std::string name;
  uint16_t dir = 0;
  bool segment = false;
  int fd = -1;                         // segments: opened for the tombstone writes
  int dir_fd = -1;                     // message files: for the directory fsync after unlink
  uint32_t live = 0;                   // live messages in it
  bool removal_queued = false;         // in maybe_empty_ (at most once: Tick may free it)
  bool opening = false;                // fd (segment) or dir_fd (message file) being opened
  std::vector<base::QueueId> waiting;  // retirements waiting for that open
};

// Opens a File's segment (for tombstones) or its directory (for unlinks).
struct Ledger::FileOpen final : io::Completion {
  Ledger* ledger;
  File* file;  // stays: a file with waiting retirements has live messages
  std::string path;
  void OnComplete(int result, uint32_t) override {
    ledger->OnFileOpened(file, result);
    delete this;
  }
};

// A new journal: its directory's descriptor (once), the file, then the
// directory fsync that makes its name durable before any entry is written.
struct Ledger::JournalOpen final : io::Completion {
  enum class Step { kDirectory, kFile, kNameSync };
  Ledger* ledger;
  uint64_t seq;
  Step step;
  std::string dir_path;
  std::string path;
  void OnComplete(int result, uint32_t) override { ledger->OnJournalOpened(this, result); }
};

// An emptied segment or journal being unlinked (and its descriptor closed).
struct Ledger::Removal final : io::Completion {
  Ledger* ledger;
  std::string path;
  bool segment;
  int ops = 0;
  int failed = 0;
  void OnComplete(int result, uint32_t) override {
    if (result < 0 && result != -ENOENT && failed == 0) failed = result;
    if (--ops > 0) return;
    --ledger->in_flight_;
    if (failed < 0) {
      ++ledger->stats_.io_errors;
      SLUICE_LOG(kWarning, "ledger.remove_failed", "cannot remove a finished file",
                 {{"file", path}, {"error", std::strerror(-failed)}});
    } else if (path.empty()) {
      // only a descriptor closed
    } else if (segment) {
      ++ledger->stats_.segments_removed;
    } else {
      ++ledger->stats_.journals_removed;
    }
    delete this;
  }
};

// The retirements of one turn: per file a linked chain (tombstone writes then
// fdatasync, or unlink then directory fsync).
struct Ledger::RetireBatch final : io::Completion {
  Ledger* ledger;
  std::vector<base::QueueId> ids;
  int ops = 0;
  int failed = 0;
  void OnComplete(int result, uint32_t) override {
    if (result < 0 && failed == 0) failed = result;
    if (--ops == 0) ledger->OnRetired(this, failed, /*owned=*/true);
  }
};

// Tombstones written since the last fdatasync of their segments: `writes`
// still in flight, then (syncing) one fdatasync per file.
struct Ledger::TombstoneBatch final : io::Completion {
  Ledger* ledger;
  std::vector<base::QueueId> ids;
  std::vector<File*> files;
  int writes = 0;
  int syncs = 0;
  bool syncing = false;
  int failed = 0;
  void OnComplete(int result, uint32_t) override {
    // A short tombstone write retires nothing (the record would come back).
    if (!syncing && result >= 0 && static_cast<size_t>(result) != spool::kTombstone.size()) {
      result = -EIO;
    }
    if (result < 0 && failed == 0) failed = result;
    if (!syncing) {
      --writes;
      return;
    }
    if (--syncs == 0) ledger->OnTombstones(this);
  }
};

struct Ledger::JournalWrite final : io::Completion {
  Ledger* ledger;
  uint64_t seq;  // the journal written to
  std::string bytes;
  int ops = 0;
  int failed = 0;
  void OnComplete(int result, uint32_t) override {
    if (result < 0 && failed == 0) failed = result;
    if (--ops == 0) ledger->OnJournalWritten(this, failed);
  }
};

Ledger::Ledger(io::Loop& ring, std::string spool_root, int own_dir, uint64_t first_journal_seq,
               std::function<std::string()> current_segment, int root_fd)
    : ring_(ring),
      root_(std::move(spool_root)),
      root_fd_(root_fd >= 0 ? root_fd : AT_FDCWD),
      prefix_(root_fd >= 0 ? std::string() : absl::StrCat(root_, "/")),
      own_dir_(own_dir),
      current_segment_(std::move(current_segment)),
      journal_seq_(first_journal_seq),
      recovered_journal_seq_(first_journal_seq) {}

Ledger::~Ledger() {
  delete syncing_;  // only when the loop ended with its fdatasync in flight
  // Descriptors of a loop's own root (a FakeLoop's) are not the kernel's.
  if (root_fd_ != AT_FDCWD) return;
  for (auto& [key, f] : files_) {
    if (f->fd >= 0) close(f->fd);
    if (f->dir_fd >= 0) close(f->dir_fd);
  }
  for (auto& [seq, j] : journals_) {
    if (j.fd >= 0) close(j.fd);
  }
  if (own_dir_fd_ >= 0) close(own_dir_fd_);
}

std::string Ledger::PathOf(uint16_t dir, const std::string& name) const {
  return name.empty() ? absl::StrCat(prefix_, dir) : absl::StrCat(prefix_, dir, "/", name);
}

Ledger::File* Ledger::FileFor(const RecordRef& where) {
  const std::string key = absl::StrCat(where.dir, "/", where.file);
  auto& slot = files_[key];
  if (!slot) {
    slot = std::make_unique<File>();
    slot->path = PathOf(where.dir, where.file);
    slot->name = where.file;
    slot->dir = where.dir;
    slot->segment = IsSegment(where.file);
  }
  return slot.get();
}

void Ledger::Add(base::QueueId id, const RecordRef& where, uint32_t pending,
                 bool in_recovered_journal) {
  File* f = FileFor(where);
  // Segments rotate at 64 MiB and hold records of at most ~128 KiB.
  SLUICE_CHECK(where.offset <= UINT32_MAX && where.length <= UINT32_MAX);
  auto [it, inserted] = live_.try_emplace(id);
  SLUICE_CHECK(inserted);
  it->second.file = f;
  it->second.offset = static_cast<uint32_t>(where.offset);
  it->second.length = static_cast<uint32_t>(where.length);
  it->second.pending = pending;
  ++f->live;
  ++stats_.messages_added;
  live_bytes_ += where.length;
  if (in_recovered_journal && recovered_journal_seq_ != 0) {
    // Never appended to (OpenJournal starts past it): fd stays -1. Recovered
    // messages are added before any journal is opened; inserting later could
    // rehash journals_ under journal_.
    SLUICE_CHECK(journal_ == nullptr || journals_.contains(recovered_journal_seq_));
    Journal& j = journals_[recovered_journal_seq_];
    j.seq = recovered_journal_seq_;
    ++j.live;
    journaled_[id].push_back(static_cast<uint32_t>(recovered_journal_seq_));
  }
  if (pending == 0) {
    it->second.pending = 0;
    retire_pending_.push_back(id);
  }
}

std::optional<RecordRef> Ledger::Find(base::QueueId id) const {
  auto it = live_.find(id);
  if (it == live_.end()) return std::nullopt;
  const Live& m = it->second;
  return RecordRef{m.file->dir, m.file->name, m.offset, m.length};
}

void Ledger::Final(base::QueueId id, const uint32_t* recipients, size_t count) {
  auto it = live_.find(id);
  if (it == live_.end() || count == 0) return;  // already retired (a duplicate note)
  Live& m = it->second;
  if (m.pending == 0) return;  // retiring
  if (count >= m.pending) {
    m.pending = 0;
    retire_pending_.push_back(id);
    return;
  }
  m.pending -= static_cast<uint32_t>(count);
  if (journal_ == nullptr) OpenJournal();  // the entries wait in journal_buffer_ until it is
  for (size_t i = 0; i < count; ++i) {
    spool::AppendJournalEntry(journal_buffer_, spool::JournalEntry{id, recipients[i]});
  }
  stats_.journal_entries += count;
  auto& journals = journaled_[id];
  if (std::find(journals.begin(), journals.end(), journal_->seq) == journals.end()) {
    journals.push_back(static_cast<uint32_t>(journal_->seq));
    ++journal_->live;
  }
}

void Ledger::OpenJournal() {
  ++journal_seq_;
  Journal& j = journals_[journal_seq_];
  j.seq = journal_seq_;
  journal_ = &j;
  auto* op = new JournalOpen();
  op->ledger = this;
  op->seq = journal_seq_;
  op->dir_path = PathOf(static_cast<uint16_t>(own_dir_), "");
  op->path = PathOf(static_cast<uint16_t>(own_dir_), spool::JournalFileName(journal_seq_));
  ++in_flight_;
  if (own_dir_fd_ < 0) {
    op->step = JournalOpen::Step::kDirectory;
    ring_.Openat(op, root_fd_, op->dir_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  } else {
    op->step = JournalOpen::Step::kFile;
    ring_.Openat(op, root_fd_, op->path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  }
}

void Ledger::OnJournalOpened(JournalOpen* op, int result) {
  auto it = journals_.find(op->seq);
  Journal* j = it == journals_.end() ? nullptr : &it->second;
  if (result >= 0 && j != nullptr) {
    switch (op->step) {
      case JournalOpen::Step::kDirectory:
        own_dir_fd_ = result;
        op->step = JournalOpen::Step::kFile;
        ring_.Openat(op, root_fd_, op->path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                     0600);
        return;
      case JournalOpen::Step::kFile:
        j->fd = result;
        // The journal's name must survive a crash too (rare: once per rotation).
        op->step = JournalOpen::Step::kNameSync;
        ring_.Fsync(op, own_dir_fd_);
        return;
      case JournalOpen::Step::kNameSync:
        j->ready = true;
        break;
    }
  } else if (result < 0) {
    SLUICE_LOG(kError, "ledger.create_failed", "cannot create a journal segment",
               {{"file", op->path}, {"error", std::strerror(-result)}});
    ++stats_.io_errors;
    if (j != nullptr && j == journal_) {
      // The entries waiting for it are dropped: those recipients are
      // delivered again after a crash (never lost). The next partial final
      // opens another journal.
      journal_buffer_.clear();
      journal_ = nullptr;
    }
  }
  --in_flight_;
  delete op;
}

void Ledger::Flush() {
  if (!journal_buffer_.empty() && journal_ != nullptr && journal_->ready) {
    auto* w = new JournalWrite();
    w->ledger = this;
    w->seq = journal_->seq;
    w->bytes.swap(journal_buffer_);
    ring_.Write(w, journal_->fd, w->bytes.data(), static_cast<unsigned>(w->bytes.size()),
                journal_->size, io::kLinked);
    ring_.Fdatasync(w, journal_->fd);
    w->ops = 2;
    journal_->size += w->bytes.size();
    ++in_flight_;
    if (journal_->size >= kJournalRotateBytes) journal_ = nullptr;  // the next entry opens one
  }
  if (!retire_pending_.empty()) StartRetirements();
  MaybeSyncTombstones();
}

void Ledger::StartRetirements() {
  std::vector<base::QueueId> ids;
  ids.swap(retire_pending_);
  RetireBatch* unlinks = nullptr;  // message files: unlink, then fsync the directory
  for (base::QueueId id : ids) {
    const Live& m = live_.at(id);
    File* f = m.file;
    if ((f->segment ? f->fd : f->dir_fd) < 0) {
      // Opened once per file; its retirements start at the next Flush after.
      f->waiting.push_back(id);
      if (!f->opening) {
        f->opening = true;
        auto* op = new FileOpen();
        op->ledger = this;
        op->file = f;
        op->path = f->segment ? f->path : PathOf(f->dir, "");
        ++in_flight_;
        ring_.Openat(op, root_fd_, op->path.c_str(),
                     f->segment ? O_WRONLY | O_CLOEXEC : O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
      }
      continue;
    }
    if (f->segment) {
      // The tombstone is written now and made durable with the others of the
      // next ~100 ms by one fdatasync per segment (MaybeSyncTombstones).
      if (!tombstones_) {
        tombstones_ = std::make_unique<TombstoneBatch>();
        tombstones_->ledger = this;
        tombstones_since_ms_ = ring_.NowMonotonicMs();
      }
      TombstoneBatch& t = *tombstones_;
      ring_.Write(&t, f->fd, spool::kTombstone.data(),
                  static_cast<unsigned>(spool::kTombstone.size()), m.offset);
      ++t.writes;
      t.ids.push_back(id);
      if (std::find(t.files.begin(), t.files.end(), f) == t.files.end()) t.files.push_back(f);
      continue;
    }
    if (unlinks == nullptr) {
      unlinks = new RetireBatch();
      unlinks->ledger = this;
      ++in_flight_;
    }
    unlinks->ids.push_back(id);
    ring_.Unlinkat(unlinks, f->dir_fd, f->name.c_str(), 0, io::kLinked);
    ring_.Fsync(unlinks, f->dir_fd);
    unlinks->ops += 2;
  }
  // The unlink SQEs point at File::name: submit now, while it exists.
  if (unlinks != nullptr) ring_.Submit();
}

void Ledger::MaybeSyncTombstones() {
  if (!tombstones_ || syncing_ != nullptr || tombstones_->writes > 0) return;
  const uint64_t now = ring_.NowMonotonicMs();
  if (now - tombstones_since_ms_ < kTombstoneSyncMs && tombstones_->ids.size() < kTombstoneBatch) {
    return;
  }
  syncing_ = tombstones_.release();
  syncing_->syncing = true;
  ++in_flight_;
  for (File* f : syncing_->files) {
    ring_.Fdatasync(syncing_, f->fd);
    ++syncing_->syncs;
  }
}

void Ledger::OnFileOpened(File* f, int result) {
  --in_flight_;
  f->opening = false;
  std::vector<base::QueueId> waiting;
  waiting.swap(f->waiting);
  if (result < 0) {
    SLUICE_LOG(kError, "ledger.open_failed",
               "cannot open a finished message file; it stays live (delivered again after a "
               "restart, never lost)",
               {{"file", f->path}, {"error", std::strerror(-result)}});
    ++stats_.io_errors;
    return;  // they stay live: delivered again after a restart, never lost
  }
  (f->segment ? f->fd : f->dir_fd) = result;
  retire_pending_.insert(retire_pending_.end(), waiting.begin(), waiting.end());
}

void Ledger::OnTombstones(TombstoneBatch* t) {
  if (!t->syncing) {
    // A tombstone write finished; its batch syncs when due.
    return;
  }
  SLUICE_CHECK(t == syncing_);
  syncing_ = nullptr;
  RetireBatch done;
  done.ids.swap(t->ids);
  const int failed = t->failed;
  delete t;
  OnRetired(&done, failed, /*owned=*/false);  // counts down MaybeSyncTombstones' in_flight_
}

void Ledger::OnRetired(RetireBatch* batch, int result, bool owned) {
  --in_flight_;
  if (result < 0) {
    ++stats_.io_errors;
    SLUICE_LOG(kError, "ledger.retire_failed",
               "retiring finished messages failed; they may be delivered again after a restart",
               {{"messages", batch->ids.size()}, {"error", std::strerror(-result)}});
  }
  for (base::QueueId id : batch->ids) {
    auto it = live_.find(id);
    if (it == live_.end()) continue;
    File* f = it->second.file;
    if (result < 0) {
      // Its record may still be queued after a restart: the journals naming
      // its recipients already final stay (until a restart compacts them), or
      // those would be delivered twice.
      journaled_.erase(id);
    } else {
      ReleaseJournals(id);
    }
    live_bytes_ -= std::min<uint64_t>(live_bytes_, it->second.length);
    live_.erase(it);
    ++stats_.messages_retired;
    if (--f->live == 0 && !f->removal_queued) {
      f->removal_queued = true;
      maybe_empty_.push_back(f);
    }
  }
  if (owned) delete batch;
}

void Ledger::OnJournalWritten(JournalWrite* write, int result) {
  --in_flight_;
  if (result < 0) {
    ++stats_.io_errors;
    SLUICE_LOG(kError, "ledger.write_failed",
               "journal write failed; final recipients may be delivered again after a restart",
               {{"error", std::strerror(-result)}});
    // Its bytes may be a hole or a torn entry, where a reader stops: the
    // entries after it go to a new journal, or they would be unreadable too.
    if (journal_ != nullptr && journal_->seq == write->seq) journal_ = nullptr;
  }
  delete write;
}

void Ledger::ReleaseJournals(base::QueueId id) {
  auto entry = journaled_.find(id);
  if (entry == journaled_.end()) return;
  for (uint32_t seq : entry->second) {
    auto it = journals_.find(seq);
    if (it != journals_.end() && it->second.live > 0) --it->second.live;
  }
  journaled_.erase(entry);
}

void Ledger::Tick() {
  MaybeSyncTombstones();  // a quiet shard has no turns to do it in
  if (!maybe_empty_.empty()) {
    const std::string current = current_segment_ ? current_segment_() : std::string();
    std::vector<File*> keep;
    for (File* f : maybe_empty_) {
      if (f->live != 0) {  // new records arrived: no longer empty
        f->removal_queued = false;
        continue;
      }
      if (f->segment && f->dir == own_dir_ && f->name == current) {
        keep.push_back(f);  // still being appended to: look again later
        continue;
      }
      if (f->segment) {
        Remove(f->path, f->fd, /*segment=*/true);
      } else if (f->fd >= 0) {
        Remove(std::string(), f->fd, false);
      }
      if (f->dir_fd >= 0) Remove(std::string(), f->dir_fd, false);
      files_.erase(absl::StrCat(f->dir, "/", f->name));
    }
    maybe_empty_.swap(keep);
  }
  if (in_flight_ == 0) {
    // The journal being appended to goes too once every message it names is
    // retired: otherwise an empty queue would keep a stale journal until the
    // next restart compacts it. The next partial final opens a new one.
    if (journal_ != nullptr && journal_->live == 0 && journal_buffer_.empty()) journal_ = nullptr;
    for (auto it = journals_.begin(); it != journals_.end();) {
      Journal& j = it->second;
      if (j.live == 0 && &j != journal_) {
        Remove(PathOf(static_cast<uint16_t>(own_dir_), spool::JournalFileName(j.seq)), j.fd,
               /*segment=*/false);
        journals_.erase(it++);
      } else {
        ++it;
      }
    }
  }
}

// Unlinks `path` (if not empty) and closes `fd` (if open), counting the
// removal as a segment's or a journal's.
void Ledger::Remove(std::string path, int fd, bool segment) {
  auto* r = new Removal();
  r->ledger = this;
  r->path = std::move(path);
  r->segment = segment;
  ++in_flight_;
  if (!r->path.empty()) {
    ring_.Unlinkat(r, root_fd_, r->path.c_str(), 0);
    ++r->ops;
  }
  if (fd >= 0) {
    ring_.Close(r, fd);
    ++r->ops;
  }
  if (r->ops == 0) {
    --in_flight_;
    delete r;
  }
}

bool Ledger::idle() const {
  return in_flight_ == 0 && journal_buffer_.empty() && retire_pending_.empty() && !tombstones_;
}

}  // namespace sluice::delivery
