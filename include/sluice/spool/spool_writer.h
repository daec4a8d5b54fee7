// Writes messages into one shard directory through the shard's io_uring,
// with the commit protocol of message_file.h and group commit.
//
// Per message: open "<id>.tmp" at the start of the body; body spans are
// written with writev straight from the receive buffers that hold them (each
// buffer is held until its write completes); at commit the trailer is
// written, then fdatasync and rename to "<id>.msg" run as one linked chain.
// Renames that complete in the same loop turn share one directory fsync
// (FlushDirectory, called once per turn), after which every message in that
// group is reported durable. Nothing here blocks the thread.
//
// Limits: at most kFlushBytes of body wait in memory before a write is
// issued; the number of held buffers per message is bounded by the caller.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "sluice/base/queue_id.h"
#include "sluice/io/ring.h"
#include "sluice/spool/message_file.h"

namespace sluice::spool {

class SpoolWriter {
 public:
  class Message;
  using CommitCallback = std::function<void(const absl::Status&)>;

  // `dir_fd` is an open O_DIRECTORY descriptor of the shard directory.
  SpoolWriter(io::Ring& ring, io::BufferRing& buffers, int dir_fd);
  ~SpoolWriter();

  Message* Begin(base::QueueId id);
  // Body bytes inside receive buffer `buffer_id` (held until written).
  void Append(Message* m, const char* data, size_t size, uint16_t buffer_id);
  // Body bytes the caller owns and keeps alive until the commit callback.
  void AppendOwned(Message* m, std::string bytes);
  // Seals and makes durable. `envelope` gets body size and CRC filled in.
  // `done` runs exactly once; after it, `m` is gone.
  void Commit(Message* m, Envelope envelope, CommitCallback done);
  // Drops the message; its temporary file is removed. `m` is gone after.
  void Abort(Message* m);

  // Starts the shared directory fsync for renames finished this turn.
  void FlushDirectory();

  size_t in_flight() const { return in_flight_; }

  static constexpr size_t kFlushBytes = 256 * 1024;
  static constexpr size_t kFlushIovecs = 128;

 private:
  friend class Message;
  void OnDirSync(int result, uint32_t flags);

  io::Ring& ring_;
  io::BufferRing& buffers_;
  int dir_fd_;
  size_t in_flight_ = 0;  // messages begun and not finished
  std::vector<Message*> waiting_dir_sync_;
  std::vector<Message*> dir_syncing_;
  bool dir_sync_in_flight_ = false;
  io::MemberCompletion<SpoolWriter, &SpoolWriter::OnDirSync> dir_sync_done_{this};
};

}  // namespace sluice::spool
