// Start-up recovery; see startup_recovery.h.
#include "startup_recovery.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "sluice/base/clock.h"
#include "sluice/base/strings.h"
#include "sluice/diag/diag.h"
#include "sluice/pickup/pickup_directory.h"
#include "sluice/spool/journal.h"
#include "sluice/spool/retry_state.h"

namespace sluice::server {
namespace {

struct JournalState {
  // Recipients already final, per message. A message listed here has its
  // entries in the compacted journal of its home shard (`sequence` below).
  absl::flat_hash_map<base::QueueId, absl::flat_hash_set<uint32_t>> final;
  // Per shard: the highest journal sequence number in its own directory;
  // the compacted journal, when one was written, has exactly this number.
  std::vector<uint64_t> sequence;
};

// Reads every directory's delivery journal, then rewrites the entries of
// messages still queued (spool/journal.h) into one journal per shard, in the
// directory of the shard that is the message's home in this run: that
// shard's ledger adopts the file (RecoveredMessage::journaled) and removes it
// once those messages are retired, so a journal neither outgrows the queue
// nor outlives it. (Entries are grouped by the new home, not by the
// directory they were found in, because --shards may have changed.)
absl::StatusOr<JournalState> RecoverJournals(const config::Config& config,
                                             const spool::RecoveryReport& report) {
  JournalState state;
  const size_t shards = static_cast<size_t>(config.shards);
  state.sequence.assign(shards, 0);
  absl::flat_hash_map<base::QueueId, size_t> home;  // queued message -> home shard now
  for (const spool::QueuedMessage& m : report.messages) {
    home[m.envelope.id] = static_cast<size_t>(m.directory) % shards;
  }
  std::vector<std::string> keep(shards);
  std::vector<std::string> old_files;
  for (int number : report.directories) {
    const std::string dir = absl::StrCat(config.spool_dir, "/", number);
    auto scan = spool::ReadJournals(dir);
    if (!scan.ok()) return scan.status();
    if (number >= 0 && static_cast<size_t>(number) < shards) {
      state.sequence[static_cast<size_t>(number)] = scan->highest_sequence;
    }
    for (const spool::JournalEntry& e : scan->entries) {
      const auto h = home.find(e.id);
      if (h == home.end()) continue;  // retired since: the entry is moot
      if (state.final[e.id].insert(e.recipient).second) {
        spool::AppendJournalEntry(keep[h->second], e);
      }
    }
    old_files.insert(old_files.end(), scan->files.begin(), scan->files.end());
  }
  for (size_t i = 0; i < shards; ++i) {
    if (keep[i].empty()) continue;
    const std::string dir = absl::StrCat(config.spool_dir, "/", i);
    mkdir(dir.c_str(), 0700);  // a shard added since the last run; EEXIST is fine
    const uint64_t seq = ++state.sequence[i];
    const std::string path = absl::StrCat(dir, "/", spool::JournalFileName(seq));
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 ||
        write(fd, keep[i].data(), keep[i].size()) != static_cast<ssize_t>(keep[i].size()) ||
        fdatasync(fd) != 0) {
      const int err = errno;
      if (fd >= 0) close(fd);
      return absl::InternalError(absl::StrCat("write ", path, ": ", std::strerror(err)));
    }
    close(fd);
    const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      fsync(dfd);  // the compacted journal's name, before the old ones go
      close(dfd);
    }
  }
  for (const std::string& old : old_files) unlink(old.c_str());
  return state;
}

// The retry state the last clean stop left in each directory
// (spool/retry_state.h), by message; taken, so it is never applied twice.
absl::StatusOr<absl::flat_hash_map<base::QueueId, std::vector<spool::RetryEntry>>> TakeRetryStates(
    const config::Config& config, const spool::RecoveryReport& report) {
  absl::flat_hash_map<base::QueueId, std::vector<spool::RetryEntry>> by_message;
  size_t jobs = 0;
  for (int number : report.directories) {
    auto entries = spool::TakeRetryState(absl::StrCat(config.spool_dir, "/", number));
    if (!entries.ok()) return entries.status();
    jobs += entries->size();
    for (spool::RetryEntry& e : *entries) by_message[e.id].push_back(std::move(e));
  }
  if (jobs > 0) {
    SLUICE_LOG(kInfo, "spool.retry_state_restored", "retry state restored from the last stop",
               {{"jobs", jobs}});
  }
  return by_message;
}

// Holds of messages no longer in the spool (delivered or removed while the
// hold was saved, or set aside as corrupt) are dropped, so the file does not
// grow with ids that can never come back.
void PruneHeldIds(delivery::AdminStore& store, const spool::RecoveryReport& recovered) {
  const delivery::AdminState state = store.Snapshot();
  if (state.held_ids.empty()) return;
  absl::flat_hash_set<base::QueueId> present;
  for (const spool::QueuedMessage& m : recovered.messages) present.insert(m.envelope.id);
  size_t gone = 0;
  for (base::QueueId id : state.held_ids) gone += present.contains(id) ? 0 : 1;
  if (gone == 0) return;
  const absl::Status s = store.Update(
      [&](delivery::AdminState& st) {
        std::erase_if(st.held_ids, [&](base::QueueId id) { return !present.contains(id); });
      },
      base::WallMicros());
  if (!s.ok()) {
    SLUICE_LOG(kWarning, "admin.prune_failed", "held ids of vanished messages not pruned",
               {{"error", s.message()}});
  }
}

using RetryStates = absl::flat_hash_map<base::QueueId, std::vector<spool::RetryEntry>>;

// One recovered message as its shard adopts it: the recipients the journal
// has not recorded as final are pending; the saved retry state is taken.
RecoveredMessage ToRecovered(spool::QueuedMessage& m, const JournalState& journals,
                             RetryStates& retry) {
  RecoveredMessage r;
  r.id = m.envelope.id;
  const std::string_view path = m.where.path;
  r.where.dir = static_cast<uint16_t>(m.directory);
  r.where.file = std::string(path.substr(path.rfind('/') + 1));
  r.where.offset = m.where.offset;
  r.where.length = m.where.length;
  r.recipients.reserve(m.envelope.recipients.size());
  const auto done = journals.final.find(r.id);
  for (uint32_t i = 0; i < m.envelope.recipients.size(); ++i) {
    r.recipients.push_back(std::move(m.envelope.recipients[i].address));
    if (done == journals.final.end() || !done->second.contains(i)) r.pending.push_back(i);
  }
  r.journaled = done != journals.final.end();
  if (auto saved = retry.find(r.id); saved != retry.end()) r.retry = std::move(saved->second);
  return r;
}

}  // namespace

// Recovery: unfinished writes go, corrupt files are set aside, the rest
// is the queue this process starts with.
absl::StatusOr<spool::RecoveryReport> RecoverSpool(const config::Config& config) {
  spool::ScanOptions scan;
  scan.repair = true;
  scan.verify_body = true;
  scan.merge_values = false;  // recovery needs the addresses only
  auto recovered = spool::ScanSpool(config.spool_dir, scan);
  if (!recovered.ok()) return recovered.status();
  for (const std::string& c : recovered->corrupt) {
    SLUICE_LOG(kWarning, "spool.corrupt_set_aside", "set aside a corrupt spool file",
               {{"file", c}});
  }
  SLUICE_LOG(kNotice, "spool.recovered",
             absl::StrCat(recovered->messages.size(), " queued messages recovered, ",
                          recovered->temporary_removed, " unfinished removed"),
             {{"messages", recovered->messages.size()},
              {"unfinished_removed", recovered->temporary_removed}});
  if (recovered->counts.set_aside() > 0 || recovered->counts.repaired_preambles > 0 ||
      recovered->counts.empty_segments > 0) {
    SLUICE_LOG(kWarning, "spool.recovery_repairs", "recovery repaired or set aside spool data",
               {{"counts", spool::DescribeCounts(recovered->counts)},
                {"corrupt_dir", absl::StrCat(config.spool_dir, "/corrupt")}});
  }
  return recovered;
}

// Finishes the pickup claims a crash interrupted (pickup/ingester.h): a
// claimed file (or batch directory) that is the origin of a recovered record
// was committed, so it goes; a batch directory already renamed
// "<id>.pickup.done" was committed too (its record may even be delivered and
// gone), so it goes; any other is returned, to be processed again.
absl::StatusOr<std::vector<std::string>> RecoverClaimed(const config::Config& config,
                                                        const spool::RecoveryReport& report) {
  absl::flat_hash_set<std::string> committed;
  for (const spool::QueuedMessage& m : report.messages) {
    if (!m.envelope.origin.empty()) committed.insert(m.envelope.origin);
  }
  std::vector<std::string> again;
  size_t removed = 0;
  for (int number : report.directories) {
    const std::string dir =
        absl::StrCat(config.spool_dir, "/", number, "/", std::string(pickup::kClaimedDir));
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) continue;  // none
    auto ends_with = [](std::string_view name, std::string_view suffix) {
      return name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
    };
    const std::string released =
        absl::StrCat(base::Av(pickup::kClaimedSuffix), base::Av(pickup::kReleasedSuffix));
    std::vector<std::string> names;
    while (dirent* e = readdir(d)) {
      const std::string_view name = e->d_name;
      if (ends_with(name, pickup::kClaimedSuffix) || ends_with(name, released)) {
        names.emplace_back(name);
      }
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      const std::string path = absl::StrCat(dir, "/", name);
      if (committed.contains(name) || ends_with(name, released)) {
        // A file, or a batch directory with its files.
        if (auto s = pickup::RemoveTree(path); !s.ok()) return s;
        ++removed;
      } else {
        again.push_back(path);
      }
    }
  }
  if (removed > 0 || !again.empty()) {
    SLUICE_LOG(kNotice, "pickup.claimed_recovered",
               absl::StrCat("claimed files: ", removed, " already queued (removed), ", again.size(),
                            " to process again"),
               {{"removed", removed}, {"again", again.size()}});
  }
  if (config.pickup_dir.empty() && !again.empty()) {
    SLUICE_LOG(kWarning, "pickup.no_directory",
               "no pickup directory configured; claimed files stay in <spool>/<n>/claimed/ until "
               "one is",
               {{"files", again.size()}});
    again.clear();
  }
  return again;
}

// Suspensions and holds set by `sluice queue` (delivery/admin_state.h).
// A file that does not verify stops the start: applying half of it could
// deliver mail the administrator held.
absl::Status LoadAdminStore(delivery::AdminStore& store, const spool::RecoveryReport& recovered) {
  if (auto s = store.Load(base::WallMicros()); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(s.message(),
                                               " (move the file aside to start "
                                               "without the saved holds and "
                                               "suspensions)"));
  }
  PruneHeldIds(store, recovered);
  return absl::OkStatus();
}

// Hands the recovered queue to the shards: shard directory n belongs to
// shard n % shards, whatever --shards was when it was written; the claimed
// pickup files go to shard 0.
absl::Status AdoptRecovered(const config::Config& config, spool::RecoveryReport& recovered,
                            std::vector<std::string> claimed,
                            std::vector<std::unique_ptr<Shard>>& shard_objects) {
  const int shards = config.shards;
  auto journals = RecoverJournals(config, recovered);
  if (!journals.ok()) return journals.status();
  auto retry = TakeRetryStates(config, recovered);
  if (!retry.ok()) return retry.status();
  std::vector<std::vector<RecoveredMessage>> adopted(static_cast<size_t>(shards));
  size_t finished = 0;
  for (spool::QueuedMessage& m : recovered.messages) {
    RecoveredMessage r = ToRecovered(m, *journals, *retry);
    if (r.pending.empty()) ++finished;
    adopted[static_cast<size_t>(m.directory % shards)].push_back(std::move(r));
  }
  recovered.messages.clear();
  if (finished > 0) {
    SLUICE_LOG(kInfo, "spool.recovered_finished", "recovered messages were already finished",
               {{"messages", finished}});
  }
  shard_objects[0]->AdoptClaimed(std::move(claimed));
  for (int i = 0; i < shards; ++i) {
    shard_objects[static_cast<size_t>(i)]->AdoptRecovered(
        std::move(adopted[static_cast<size_t>(i)]), journals->sequence[static_cast<size_t>(i)]);
  }
  return absl::OkStatus();
}

}  // namespace sluice::server
