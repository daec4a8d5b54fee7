// Writes messages into one shard directory through the shard's io_uring,
// with the commit protocols of message_file.h and group commit. Body spans
// are never copied: iovecs point into the receive buffers that hold them,
// and each buffer is held until the write that reads it has completed.
//
// Small messages (the bulk case) stay in their receive buffers until
// commit, then are appended as records to the shard's current segment file.
// Every record committed in one loop turn goes out in one linked chain:
// writev(s), then one fdatasync (plus a directory fsync when the segment is
// new). So a turn costs one flush, however many messages it acknowledges.
//
// A message that outgrows kFlushBytes before its end switches to its own
// file: open "<id>.tmp", stream the body as it arrives, and at commit write
// the trailer, fdatasync and rename to "<id>.msg" as one linked chain; the
// renames of one turn share a directory fsync.
//
// Body bytes come two ways: Append holds the receive buffer they sit in
// (zero copy, for spans that fill most of a buffer), AppendCopy copies them
// into 16 KiB pages of the message (small spans, TLS plaintext): a trickled
// body must not pin a 4 KiB buffer per 3-byte segment.
//
// Flush() runs once per loop turn and starts whatever group commit is due.
// Nothing here blocks the thread. Limits: kFlushBytes of body in memory per
// message (kSpillBytes while the shard's copied pages exceed the memory
// budget); segments rotate past kSegmentBytes.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "sluice/base/histogram.h"
#include "sluice/base/queue_id.h"
#include "sluice/io/loop.h"
#include "sluice/spool/message_file.h"

namespace sluice::spool {

// Where a durable record landed, told to the shard's ledger (the delivery
// engine's bookkeeping) before the commit callback runs.
struct StoredRecord {
  base::QueueId id;
  std::string file;     // name inside the shard directory: "<id>.seg" or "<id>.msg"
  uint64_t offset = 0;  // in a segment; 0 for a message file
  uint64_t length = 0;  // record length; 0: to the end of the file
  uint32_t recipients = 0;
};

class SpoolWriter {
 public:
  class Message;
  using CommitCallback = std::function<void(const absl::Status&)>;
  using StoredHook = std::function<void(const StoredRecord&)>;

  // `dir_fd` is an open O_DIRECTORY descriptor of the shard directory;
  // `new_id` names new segments.
  SpoolWriter(io::Loop& ring, io::BufferRing& buffers, int dir_fd,
              std::function<base::QueueId()> new_id);
  ~SpoolWriter();

  Message* Begin(base::QueueId id);
  // Body bytes inside receive buffer `buffer_id` (held until written).
  void Append(Message* m, const char* data, size_t size, uint16_t buffer_id);
  // Body bytes the caller hands over (kept until the message is done).
  void AppendOwned(Message* m, std::string bytes);
  // Body bytes copied into the message's own pages (coalesced): for spans
  // too small to be worth a held receive buffer, and plaintext from TLS.
  void AppendCopy(Message* m, const char* data, size_t size);
  // Receive buffers the message holds (pending or being written).
  size_t HeldBuffers(const Message* m) const;
  // Seals and makes durable. `envelope` gets body size and CRC filled in.
  // `done` runs exactly once; after it, `m` is gone.
  void Commit(Message* m, Envelope envelope, CommitCallback done);
  // Drops the message; its temporary file is removed. `m` is gone after.
  void Abort(Message* m);

  // Starts this turn's group commits: the segment batch and the directory
  // fsync for renamed message files.
  void Flush();

  // Runs for every record once it is durable, before its commit callback.
  void set_stored_hook(StoredHook hook) { stored_hook_ = std::move(hook); }
  // The segment new records are appended to ("" before the first).
  const std::string& segment_name() const { return segment_name_; }

  size_t in_flight() const { return in_flight_; }
  // Bytes of copied body pages alive, and the budget past which bodies
  // stream to their files early (kSpillBytes instead of kFlushBytes).
  size_t copied_bytes() const { return copied_bytes_; }
  void set_memory_budget(size_t bytes) { memory_budget_ = bytes; }
  uint64_t segment_flushes() const { return segment_flushes_; }
  // Metrics: each segment group commit's time from its first write to its
  // fdatasync (and directory fsync) completing, and the bytes committed.
  // Messages large enough for their own file are not in either.
  const base::Histogram& commit_latency() const { return commit_latency_; }
  uint64_t bytes_committed() const { return bytes_committed_; }

  static constexpr size_t kFlushBytes = 128 * 1024;
  // Copies go into pages of this size; a page holds four MSS-sized spans.
  static constexpr size_t kPageBytes = 16 * 1024;
  // Over the memory budget, a body streams to its file once it holds this.
  static constexpr size_t kSpillBytes = 16 * 1024;
  static constexpr size_t kFlushIovecs = 256;
  static constexpr uint64_t kSegmentBytes = 64ull << 20;
  static constexpr size_t kIovMax = 1024;  // per writev (IOV_MAX)

 private:
  friend class Message;
  struct Batch;
  void Enqueue(Message* m);
  void StartBatch();
  void OpenSegment();
  void OnSegmentOpen(int result, uint32_t flags);
  void OnBatchOp(int result, uint32_t flags);
  void FinishBatch();
  void StartDirSync();
  void OnDirSync(int result, uint32_t flags);

  io::Loop& ring_;
  io::BufferRing& buffers_;
  int dir_fd_;
  std::function<base::QueueId()> new_id_;
  size_t in_flight_ = 0;  // messages begun and not finished
  size_t copied_bytes_ = 0;
  size_t memory_budget_ = 64ull << 20;
  StoredHook stored_hook_;

  // The current segment.
  int segment_fd_ = -1;
  std::string segment_name_;
  std::string opening_name_;
  uint64_t segment_size_ = 0;
  bool segment_opening_ = false;
  bool segment_needs_dir_sync_ = false;
  uint64_t segment_flushes_ = 0;
  base::Histogram commit_latency_{base::kCommitBoundsUs};
  uint64_t bytes_committed_ = 0;
  std::unique_ptr<Batch> open_batch_;      // collecting this turn's records
  std::unique_ptr<Batch> flushing_batch_;  // its chain in flight
  io::MemberCompletion<SpoolWriter, &SpoolWriter::OnSegmentOpen> segment_open_done_{this};
  io::MemberCompletion<SpoolWriter, &SpoolWriter::OnBatchOp> batch_op_done_{this};

  std::vector<Message*> waiting_dir_sync_;
  std::vector<Message*> dir_syncing_;
  bool dir_sync_in_flight_ = false;
  io::MemberCompletion<SpoolWriter, &SpoolWriter::OnDirSync> dir_sync_done_{this};
};

}  // namespace sluice::spool
