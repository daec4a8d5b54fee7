// The pickup ingester's file work (private to pickup/): everything that
// touches the pickup directory or a claimed file with a blocking syscall
// (readdir, rename, open/read, write + fsync). It runs on the pickup
// thread (ingester.h), never on a shard: each function takes what it needs
// by value or through a PickupFiles, which is set up on the shard at start-up
// and read-only afterwards, and returns what happened as data for the shard
// to log, count and commit.
//
// Trust: names in new/ and every byte of a file come from local producers.
// Symbolic links are never followed, only regular files are read, and every
// read is bounded by the limit that applies (max_message_size, the batch
// limits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "sluice/base/queue_id.h"
#include "sluice/pickup/batch.h"
#include "sluice/pickup/message_parser.h"

namespace sluice::pickup::internal {

// A file name is ours to take unless it is hidden (".name": a producer's
// scratch file, as in Maildir) or not a single path component.
bool Takeable(std::string_view name);
// A batch directory: NAME.batch (docs/PICKUP.md).
bool IsBatchName(std::string_view name);
// Names are untrusted: keep what we print and log printable.
std::string Printable(std::string_view s);

// One file (or batch directory) being taken.
struct Item {
  std::string name;          // the name it had in new/ (for bad/)
  std::string claimed_path;  // <spool>/<n>/claimed/<id>.pickup
  std::string claimed_name;  // <id>.pickup: the envelope's origin
  base::QueueId id;          // the message's queue id
  bool fresh = false;        // still in new/: the pickup thread claims it first
};

// The directories, opened on the shard at start-up, read-only afterwards.
class PickupFiles {
 public:
  PickupFiles(std::string dir, std::string claimed_dir);
  ~PickupFiles();
  PickupFiles(const PickupFiles&) = delete;
  PickupFiles& operator=(const PickupFiles&) = delete;

  absl::Status Open();  // bad/ (its descriptor is fsynced after moves)
  const std::string& new_dir() const { return new_dir_; }
  const std::string& bad_dir() const { return bad_dir_; }
  const std::string& claimed_dir() const { return claimed_dir_; }

  // Test hook SLUICE_TEST_ABORT_AT (ingester.h): true when set to `point`.
  bool abort_at(std::string_view point) const { return !abort_at_.empty() && abort_at_ == point; }
  // abort()s the process when the hook names `point`.
  void MaybeAbort(const char* point) const;

  // Pickup thread only from here on.
  // The names in new/, sorted (oldest first for time-based names); false
  // with `error` set when new/ cannot be listed.
  bool ListNew(std::vector<std::string>& names, std::string& error) const;
  // new/NAME -> the claimed path. 0, or the errno of the rename.
  int Claim(const Item& item) const;
  // The reason into bad/NAME.error, the claimed file to bad/NAME, fsync bad/.
  absl::Status Reject(const Item& item, const std::string& reason) const;
  // bad/NAME.error (the skipped rows of an accepted batch), fsync bad/.
  absl::Status WriteReport(const Item& item, const std::string& note, std::string& path) const;

 private:
  // bad/NAME, or bad/NAME.<id> when NAME or NAME.error is taken.
  std::string BadName(const Item& item) const;

  const std::string new_dir_;
  const std::string bad_dir_;
  const std::string claimed_dir_;
  std::string abort_at_;
  int bad_fd_ = -1;
};

enum class ReadOutcome { kOk, kInvalid, kError };

// Reads a claimed file, or a file inside a claimed batch directory (`dir_fd`
// and a name): at most `max` bytes. Symlinks are not followed: a producer
// must not make Sluice read other files. `what` names the file in reasons
// ("file" for a single message); `limit` names the limit. A missing file is
// invalid when `missing_is_invalid` (a batch without its manifest), else an
// error.
ReadOutcome ReadAt(int dir_fd, const std::string& name, size_t max, std::string_view what,
                   std::string_view limit, bool missing_is_invalid, std::string& out,
                   std::string& why);

// What became of one item of a claim job.
struct Taken {
  enum class Kind {
    kNotTried,     // the job's byte budget ran out first: give it back
    kLost,         // the claim found nothing (another process took it)
    kClaimFailed,  // the rename failed otherwise (`reason` says why)
    kBatch,        // a claimed batch directory: read by the batch steps
    kMessage,      // read and valid: `message` is to be committed
    kRejected,     // invalid: moved to bad/ (`reason`)
    kUnmovable,    // invalid, but the move failed (`reason`, `error`): left claimed
    kReadFailed,   // an I/O error (`reason`): left claimed, tried again later
  };
  Kind kind = Kind::kNotTried;
  Item item;
  Message message;
  std::string reason;
  std::string error;
};

// Pickup thread: takes `items` in order: claims the fresh ones, reads and
// parses each, moves an invalid one to bad/. Once `byte_budget` bytes of
// messages are held, the rest come back kNotTried.
std::vector<Taken> TakeFiles(const PickupFiles& files, std::vector<Item> items,
                             const Limits& limits, uint64_t byte_budget);

// A committed file whose claimed copy is being unlinked (on io_uring).
struct Release {
  Item item;
  std::string sender;
  std::vector<std::string> recipients;
  uint64_t size = 0;
};

}  // namespace sluice::pickup::internal
