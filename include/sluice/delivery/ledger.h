// The ledger: a shard's record of the messages whose spool records live in
// the directories it owns ("home" side of delivery).
//
// Delivery happens on the shard that owns a recipient's domain, which is
// usually not the shard that wrote the message. The owners tell the home
// shard, through the mailboxes, which recipients reached a final outcome
// (delivered, bounced, expired). The ledger makes that durable:
//
// - when a message's last pending recipients become final, its record is
//   retired: the 8-byte tombstone magic is written over its preamble at once,
//   and the tombstones of up to 100 ms are made durable together with one
//   fdatasync per touched segment (fsyncs were a sixth of the relay's CPU when
//   done every loop turn); a message file is unlinked and the directory
//   fsynced;
// - when only some become final, they are appended to the journal
//   (spool/journal.h), fdatasynced once per turn;
// - a segment whose records are all retired is unlinked (no directory fsync
//   needed: its tombstones are already durable), unless the spool writer is
//   still appending to it; a journal file goes once every message it names
//   is retired.
//
// Crash window (docs/ARCHITECTURE.md): a recipient whose receiver said 250 but
// whose final note was not yet durable (at most ~100 ms plus one fdatasync
// after the 250) is delivered again after a restart.
// Nothing is ever lost: a record is retired only after all its recipients
// were reported final.
//
// Every file operation goes through the io::Loop, none blocks the shard:
// segments, directories and journals are opened with Openat (a retirement
// waits for its file's open; journal entries wait until the new journal's
// name is durable), and emptied files are unlinked with Unlinkat. So the
// ledger runs on io::FakeLoop too (tests/delivery/ledger_fake_test.cc,
// tests/delivery/spool_simulation_test.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "sluice/base/queue_id.h"
#include "sluice/io/loop.h"

namespace sluice::delivery {

// Where a record lives: a directory number and a file name inside it.
struct RecordRef {
  uint16_t dir = 0;
  std::string file;     // "<id>.seg" or "<id>.msg"
  uint64_t offset = 0;  // in a segment
  uint64_t length = 0;  // 0: to the end of the file
};

struct LedgerStats {
  uint64_t messages_added = 0;
  uint64_t messages_retired = 0;
  uint64_t journal_entries = 0;
  uint64_t segments_removed = 0;
  uint64_t journals_removed = 0;
  uint64_t io_errors = 0;
};

class Ledger {
 public:
  // `spool_root` holds the numbered directories; `own_dir` is where this
  // shard's journal goes; `current_segment` names the segment the spool
  // writer of own_dir still appends to (never removed).
  // Paths are `spool_root`/<n>/<name>, opened from the current directory;
  // with `root_fd` (a descriptor of the loop, e.g. FakeLoop::OpenDirectory)
  // they are <n>/<name> under it and `spool_root` only names it in logs.
  Ledger(io::Loop& ring, std::string spool_root, int own_dir, uint64_t first_journal_seq,
         std::function<std::string()> current_segment, int root_fd = -1);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // A record that is durable now, with `pending` recipients not yet final.
  // `in_recovered_journal`: a message found at start-up whose final
  // recipients are in the journal recovery compacted into own_dir (sequence
  // first_journal_seq); that file is removed once all such messages retire.
  void Add(base::QueueId id, const RecordRef& where, uint32_t pending,
           bool in_recovered_journal = false);
  // Where a live message's record is (nullptr if unknown or retired).
  std::optional<RecordRef> Find(base::QueueId id) const;

  // Recipients of `id` reached a final outcome (indexes into its envelope;
  // each reported once).
  void Final(base::QueueId id, const uint32_t* recipients, size_t count);

  // Once per loop turn: starts the journal append and the retirements due.
  void Flush();
  // Every few hundred milliseconds: removes emptied segments and journals.
  void Tick();
  bool idle() const;

  size_t live_messages() const { return live_.size(); }
  // Bytes of the live messages' records where their length is known (a
  // segment record; a message in its own file counts 0: "to its end").
  uint64_t live_bytes() const { return live_bytes_; }
  const LedgerStats& stats() const { return stats_; }

 private:
  struct File;
  // 24 bytes per queued message: the journals that name it, rare, live in
  // journaled_.
  struct Live {
    File* file;
    uint32_t offset;
    uint32_t length;
    uint32_t pending;
  };
  struct Journal {
    uint64_t seq;
    int fd = -1;
    bool ready = false;  // opened and its name durable: entries may be written
    uint64_t size = 0;
    uint32_t live = 0;  // live messages with entries in it
  };
  struct RetireBatch;
  struct TombstoneBatch;
  struct JournalWrite;
  struct FileOpen;
  struct JournalOpen;
  struct Removal;

  File* FileFor(const RecordRef& where);
  void StartRetirements();
  void MaybeSyncTombstones();
  void OnTombstones(TombstoneBatch* t);
  void OnRetired(RetireBatch* batch, int result, bool owned);
  void OnJournalWritten(JournalWrite* write, int result);
  void ReleaseJournals(base::QueueId id);
  void OpenJournal();
  void OnFileOpened(File* f, int result);
  void OnJournalOpened(JournalOpen* op, int result);
  void Remove(std::string path, int fd, bool segment);
  std::string PathOf(uint16_t dir, const std::string& name) const;

  io::Loop& ring_;
  const std::string root_;
  const int root_fd_;         // AT_FDCWD in production: paths carry root_
  const std::string prefix_;  // root_ + "/", or "" under a loop's root_fd
  int own_dir_fd_ = -1;       // for the fsync that makes a journal's name durable
  const int own_dir_;
  std::function<std::string()> current_segment_;
  absl::flat_hash_map<base::QueueId, Live> live_;
  // Messages with journal entries: the sequence numbers of those journals.
  absl::flat_hash_map<base::QueueId, absl::InlinedVector<uint32_t, 1>> journaled_;
  absl::flat_hash_map<std::string, std::unique_ptr<File>> files_;  // by "dir/name"
  absl::flat_hash_map<uint64_t, Journal> journals_;
  uint64_t journal_seq_;
  const uint64_t recovered_journal_seq_;  // first_journal_seq: recovery's compacted journal
  Journal* journal_ = nullptr;            // the one appended to

  // This turn's work.
  std::string journal_buffer_;
  std::vector<std::pair<base::QueueId, uint32_t>> journal_pending_;  // (id, count)
  std::vector<base::QueueId> retire_pending_;
  std::unique_ptr<TombstoneBatch> tombstones_;  // written, not yet fdatasynced
  uint64_t tombstones_since_ms_ = 0;
  TombstoneBatch* syncing_ = nullptr;  // its fdatasyncs in flight
  size_t in_flight_ = 0;               // batches and journal writes
  std::vector<File*> maybe_empty_;
  LedgerStats stats_;
  uint64_t live_bytes_ = 0;
};

}  // namespace sluice::delivery
