// Follows the accounting log file the way `tail -F` would, for one webhook,
// without losing a line across rotations: it reads whole lines from its
// current file, and hands out each one with the position just past it.
//
// Rotation (logrotate renames the file, then `sluice log reopen` / SIGUSR1
// makes the shards open a new one at the path): Poll() notices the path now
// names another file, opens it and queues it behind the one being read,
// holding both descriptors, so a rotated file that is then compressed or
// deleted can still be read to its end. The old file is left only when it
// is read to EOF and has been superseded for at least kRotationGraceMs (a
// shard's write in flight at the reopen lands in the old file within
// microseconds; the grace covers it many times over). Poll() must run at
// least once between two rotations for the middle file to be queued; the
// webhook worker calls it every turn and at least once a second while it
// waits, so only two rotations within one second can skip a file.
//
// Start from a saved position: if the saved file (device and inode) is not
// the one at the path, it is looked for among the files of the log's folder
// whose names start with the log's name (sluice.log.1, sluice.log-20261207;
// compressed ones are skipped): found, it is finished first, followed by the
// other rotated files written after it (by modification time) and the
// current file from 0. Not found: the current file from 0, with a line on
// stderr saying how much could not be found. A file that shrank below the
// saved offset (copytruncate) is read again from 0, also reported. An
// unfinished last line is never kept across EOF but read again: the log may
// cut a failed write's fragment back out and write over it (log_file.h).
//
// What it trusts: the log is written in whole lines (log/accounting_log.h);
// a line longer than kMaxLineBytes is skipped and counted, never buffered.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "sluice/webhook/position.h"

namespace sluice::webhook {

// A superseded file is left this long after the switch was seen, at EOF.
inline constexpr uint64_t kRotationGraceMs = 1000;
// An accounting line is at most ~300 KB (a Reception part of 10,000
// recipients); 16 MiB is far past any record and bounds the buffer.
inline constexpr size_t kMaxLineBytes = 16u << 20;
// Bytes read per read(2): large enough that a busy log costs few calls.
inline constexpr size_t kReadChunkBytes = 256u << 10;
// Files queued behind the one being read (rotations not yet caught up);
// past it, newer rotations wait until older files are done.
inline constexpr size_t kMaxQueuedFiles = 64;

class LogTailer {
 public:
  explicit LogTailer(std::string path) : path_(std::move(path)) {}
  ~LogTailer();
  LogTailer(const LogTailer&) = delete;
  LogTailer& operator=(const LogTailer&) = delete;

  // Opens the file(s) to read. No saved position: the end of the current
  // file (a new webhook sends what is logged from now on).
  absl::Status Start(const std::optional<Position>& saved);

  // The next whole line (without its '\n'), not consumed: a second Peek
  // gives it again. nullopt: none yet. The view lives until the next call.
  std::optional<std::string_view> Peek(uint64_t now_ms);
  // Consumes the line Peek gave.
  void Consume();
  // Past the last consumed line: what an acknowledgement saves.
  Position position() const;

  // Looks at the path: a new file there is opened and queued.
  void Poll(uint64_t now_ms);

  // Bytes logged and not yet consumed (all queued files).
  uint64_t lag_bytes() const;
  uint64_t lines_skipped() const { return lines_skipped_; }

 private:
  struct File {
    int fd = -1;
    dev_t dev = 0;
    ino_t ino = 0;
    std::string name;  // for messages
    // When it may be left at EOF: kRotationGraceMs after a newer file was
    // queued behind it (0: at once, for files found rotated at start).
    uint64_t leave_at_ms = UINT64_MAX;
  };
  // Reads more of the front file into buffer_; false at EOF.
  bool Fill();
  // At EOF of the front file: moves to the next one if it may.
  bool Advance(uint64_t now_ms);
  absl::Status OpenPath(File& f);
  void Queue(File f, uint64_t leave_at_ms);
  void Reset(uint64_t offset);

  const std::string path_;
  std::deque<File> files_;  // front: being read; back: the path's newest
  std::string buffer_;      // bytes of the front file from offset_ - head_ on
  size_t head_ = 0;         // buffer_[head_] is at file offset offset_
  uint64_t offset_ = 0;     // consumed, in the front file
  size_t line_size_ = 0;    // of the peeked line, with its '\n'; 0: none
  bool skipping_ = false;   // inside a line longer than kMaxLineBytes
  uint64_t lines_skipped_ = 0;
};

}  // namespace sluice::webhook
