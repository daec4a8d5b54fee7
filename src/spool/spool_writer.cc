#include "sluice/spool/spool_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "sluice/base/check.h"
#include "sluice/base/clock.h"
#include "sluice/base/crc32c.h"
#include "sluice/base/strings.h"
#include "sluice/diag/diag.h"

namespace sluice::spool {
namespace {

absl::Status IoError(std::string_view what, int result) {
  return absl::Status(absl::ErrnoToStatusCode(-result),
                      absl::StrCat(base::Av(what), ": ", std::strerror(-result)));
}

constexpr uint16_t kNoBuffer = 0xffff;

}  // namespace

// The records of one turn on their way into the segment.
struct SpoolWriter::Batch {
  std::vector<Message*> messages;
  std::vector<iovec> iov;
  uint64_t bytes = 0;
  uint64_t offset = 0;  // where in the segment it starts
  int ops = 0;          // chain operations still in flight
  absl::Status status;
  uint64_t started_us = 0;  // monotonic: the commit latency
};

// One message on its way to disk. Owns its pending iovecs; deletes itself
// once every operation it started has completed and it has reported.
//
//   memory --Commit--> in a segment batch --batch flushed--> reported
//   memory --outgrows kFlushBytes--> file: open, stream, Commit: trailer
//     write, fdatasync, rename (linked) --renamed--> directory fsync group
//     --Durable--> reported
//   errors: temporary file removed, reported; Abort (before Commit only):
//   temporary file removed, no report.
class SpoolWriter::Message {
 public:
  Message(SpoolWriter& writer, base::QueueId id) : writer_(writer), id_(id) {
    pending_.push_back(iovec{preamble_, kPreambleSize});
    pending_buffers_.push_back(kNoBuffer);
    pending_bytes_ = kPreambleSize;
  }

  void Append(const char* data, size_t size, uint16_t buffer_id) {
    if (aborted_) return;
    crc_ = base::Crc32c(crc_, data, size);
    body_size_ += size;
    if (buffer_id != kNoBuffer) {
      writer_.buffers_.Hold(buffer_id);
      ++held_buffers_;
    }
    pending_.push_back(iovec{const_cast<char*>(data), size});
    pending_buffers_.push_back(buffer_id);
    pending_bytes_ += size;
    MaybeSpill();
  }

  // Copies into this message's pages: consecutive copies share a page and
  // one iovec, so a body trickled in 3-byte lines costs one iovec per page.
  void AppendCopy(const char* data, size_t size) {
    if (aborted_) return;
    crc_ = base::Crc32c(crc_, data, size);
    body_size_ += size;
    pending_bytes_ += size;
    while (size > 0) {
      if (tail_ == nullptr || tail_->used == kPageBytes) {
        pages_.push_back(std::make_unique<Page>(writer_));
        tail_ = pages_.back().get();
      }
      char* at = tail_->data + tail_->used;
      if (pending_.empty() ||
          static_cast<char*>(pending_.back().iov_base) + pending_.back().iov_len != at) {
        pending_.push_back(iovec{at, 0});  // a new page, or a held span came between
        pending_buffers_.push_back(kNoBuffer);
      }
      const size_t n = std::min(size, kPageBytes - tail_->used);
      std::memcpy(tail_->data + tail_->used, data, n);
      tail_->used += n;
      pending_.back().iov_len += n;
      data += n;
      size -= n;
    }
    MaybeSpill();
  }

  // Takes a string over (no copy): a pickup body, a DSN.
  void AppendOwned(std::string bytes) {
    owned_.push_back(std::make_unique<std::string>(std::move(bytes)));
    Append(owned_.back()->data(), owned_.back()->size(), kNoBuffer);
  }

  size_t held_buffers() const { return held_buffers_; }

  void Commit(Envelope envelope, CommitCallback done) {
    done_ = std::move(done);
    envelope.id = id_;
    envelope.body_size = body_size_;
    envelope.body_crc = crc_;
    recipients_ = static_cast<uint32_t>(envelope.recipient_count());
    trailer_ = EncodeTrailer(std::move(envelope));
    pending_.push_back(iovec{trailer_.data(), trailer_.size()});
    pending_buffers_.push_back(kNoBuffer);
    pending_bytes_ += trailer_.size();
    committing_ = true;
    if (file_mode_) return MaybeFinish();
    // A record for the segment: its length goes in the preamble.
    record_length_ = pending_bytes_;
    const std::string preamble = EncodePreamble(pending_bytes_);
    std::memcpy(preamble_, preamble.data(), kPreambleSize);
    writer_.Enqueue(this);
  }

  void Abort() {
    aborted_ = true;
    ReleasePending();
    MaybeFinish();
  }

  // The segment batch holding this record finished; the record starts at
  // `offset` of the current segment.
  void BatchDone(const absl::Status& status, uint64_t offset) {
    ReleasePending();
    if (status.ok() && writer_.stored_hook_) {
      writer_.stored_hook_(
          StoredRecord{id_, writer_.segment_name_, offset, record_length_, recipients_});
    }
    Report(status);
  }
  uint64_t record_length() const { return record_length_; }

  // The directory fsync covering this message file's rename finished.
  void Durable(const absl::Status& status) {
    in_dir_sync_ = false;
    if (!status.ok()) {
      // Complete but maybe not durable, and never acknowledged: remove it
      // rather than deliver a message the client will send again.
      writer_.ring_.Unlinkat(nullptr, writer_.dir_fd_, final_name_.c_str(), 0);
      writer_.ring_.Submit();
    } else if (writer_.stored_hook_) {
      writer_.stored_hook_(StoredRecord{id_, final_name_, 0, 0, recipients_});
    }
    Report(status);
  }

  const std::vector<iovec>& pending() const { return pending_; }
  uint64_t pending_bytes() const { return pending_bytes_; }

 private:
  // A page of copied body bytes, counted in the writer's copied_bytes_.
  struct Page {
    explicit Page(SpoolWriter& w) : writer(w) { writer.copied_bytes_ += kPageBytes; }
    ~Page() { writer.copied_bytes_ -= kPageBytes; }
    Page(const Page&) = delete;
    Page& operator=(const Page&) = delete;
    SpoolWriter& writer;
    size_t used = 0;
    char data[kPageBytes];
  };

  // A body is kept in memory until commit (one record in the segment) until
  // it outgrows kFlushBytes or kFlushIovecs; then it streams to its own
  // file. While the shard's copied bytes are over the writer's budget, a
  // body streams once it holds kSpillBytes, so the shard's memory stays
  // bounded by configuration whatever the clients do.
  void MaybeSpill() {
    const bool over_budget =
        writer_.copied_bytes_ > writer_.memory_budget_ && pending_bytes_ >= kSpillBytes;
    if (pending_bytes_ >= kFlushBytes || pending_.size() >= kFlushIovecs || over_budget) {
      if (!file_mode_) StartFile();
      Flush(false);
    }
  }

  // A writev in flight: owns its iovecs, the buffer references and the
  // pages its iovecs point into.
  struct Write final : io::Completion {
    Message* message;
    std::vector<iovec> iov;
    std::vector<uint16_t> buffers;
    std::vector<std::unique_ptr<Page>> pages;
    uint64_t offset;
    size_t bytes;
    bool final = false;  // the trailer write of the commit chain
    void OnComplete(int result, uint32_t flags) override { message->OnWrite(this, result, flags); }
  };

  void StartFile() {
    file_mode_ = true;
    tmp_name_ = TemporaryFileName(id_);
    final_name_ = MessageFileName(id_);
    const std::string preamble = EncodePreamble(0);  // runs to the end of the file
    std::memcpy(preamble_, preamble.data(), kPreambleSize);
    writer_.ring_.Openat(&open_done_, writer_.dir_fd_, tmp_name_.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ++ops_;
  }

  void Flush(bool final) {
    if (fd_ < 0 || pending_.empty()) return;  // the open completes first
    // While the open was in flight, spans kept coming (a body of short
    // dot-stuffed lines is one span per line): no writev may exceed IOV_MAX.
    for (size_t first = 0; first < pending_.size(); first += kIovMax) {
      const size_t n = std::min(kIovMax, pending_.size() - first);
      auto* w = new Write();
      w->message = this;
      w->iov.assign(pending_.begin() + static_cast<long>(first),
                    pending_.begin() + static_cast<long>(first + n));
      w->buffers.assign(pending_buffers_.begin() + static_cast<long>(first),
                        pending_buffers_.begin() + static_cast<long>(first + n));
      w->bytes = 0;
      for (const iovec& v : w->iov) w->bytes += v.iov_len;
      w->offset = offset_;
      w->final = final;  // in the commit chain: a short write fails it (no resubmit)
      // Every page is referenced only by iovecs pending since the last
      // flush: the last write of this flush takes them all along.
      if (first + n == pending_.size()) {
        w->pages = std::move(pages_);
        pages_.clear();
        tail_ = nullptr;
      }
      offset_ += w->bytes;
      // The commit chain (writes, fdatasync, rename) runs in order.
      writer_.ring_.Writev(w, fd_, w->iov.data(), static_cast<unsigned>(w->iov.size()), w->offset,
                           io::Op{.link = final});
      ++ops_;
    }
    pending_.clear();
    pending_buffers_.clear();
    pending_bytes_ = 0;
  }

  void ReleaseBuffers(const std::vector<uint16_t>& ids) {
    for (uint16_t id : ids) {
      if (id != kNoBuffer) {
        writer_.buffers_.Release(id);
        --held_buffers_;
      }
    }
  }

  void ReleasePending() {
    ReleaseBuffers(pending_buffers_);
    pending_.clear();
    pending_buffers_.clear();
    pending_bytes_ = 0;
  }

  void OnOpen(int result, uint32_t) {
    --ops_;
    if (result < 0) {
      Fail(IoError("open spool file", result));
    } else {
      fd_ = result;
      created_ = true;
      if (!aborted_ && status_.ok() && !committing_) Flush(false);
    }
    MaybeFinish();
  }

  void OnWrite(Write* w, int result, uint32_t) {
    --ops_;
    if (result >= 0 && static_cast<size_t>(result) < w->bytes && !aborted_ && status_.ok() &&
        !w->final) {
      // Short write (rare on regular files): send the rest again.
      size_t done = static_cast<size_t>(result);
      std::vector<iovec> rest;
      for (const iovec& v : w->iov) {
        if (done >= v.iov_len) {
          done -= v.iov_len;
          continue;
        }
        rest.push_back(iovec{static_cast<char*>(v.iov_base) + done, v.iov_len - done});
        done = 0;
      }
      w->offset += static_cast<uint64_t>(result);
      w->bytes -= static_cast<size_t>(result);
      w->iov.swap(rest);
      writer_.ring_.Writev(w, fd_, w->iov.data(), static_cast<unsigned>(w->iov.size()), w->offset);
      ++ops_;
      return;
    }
    if (result < 0) {
      Fail(IoError("write spool file", result));
    } else if (static_cast<size_t>(result) != w->bytes) {
      Fail(absl::DataLossError("short write of spool trailer"));
    }
    ReleaseBuffers(w->buffers);
    delete w;
    MaybeFinish();
  }

  void OnSync(int result, uint32_t) {
    --ops_;
    if (result < 0) Fail(IoError("fdatasync spool file", result));
    MaybeFinish();
  }

  void OnRename(int result, uint32_t) {
    --ops_;
    if (result < 0) {
      Fail(IoError("rename spool file", result));
    } else {
      renamed_ = true;
    }
    MaybeFinish();
  }

  void Fail(absl::Status s) {
    if (status_.ok()) status_ = std::move(s);
  }

  // Drives a file-mode message (or an aborted one) forward whenever an
  // operation completes. Segment-mode commits are driven by the batch.
  void MaybeFinish() {
    if (ops_ > 0 || in_dir_sync_) return;
    if (aborted_) return Discard();
    if (!committing_ || !file_mode_) return;
    if (!chain_started_) {
      if (!status_.ok()) {
        RemoveTemporary();
        return Report(status_);
      }
      return StartChain();
    }
    if (status_.ok() && renamed_) {
      CloseFd();
      in_dir_sync_ = true;
      writer_.waiting_dir_sync_.push_back(this);
      return;
    }
    if (status_.ok()) status_ = absl::InternalError("spool commit chain cancelled");
    RemoveTemporary();
    Report(status_);
  }

  void StartChain() {
    chain_started_ = true;
    Flush(true);
    writer_.ring_.Fdatasync(&sync_done_, fd_, io::kLinked);
    writer_.ring_.Renameat(&rename_done_, writer_.dir_fd_, tmp_name_.c_str(), writer_.dir_fd_,
                           final_name_.c_str());
    ops_ += 2;
  }

  void CloseFd() {
    if (fd_ < 0) return;
    writer_.ring_.Close(nullptr, fd_);
    fd_ = -1;
  }

  // Removes our temporary file, if we created one. The kernel copies the
  // path when the SQE is submitted, so submit before this object goes away.
  void RemoveTemporary() {
    CloseFd();
    if (!created_) return;
    writer_.ring_.Unlinkat(nullptr, writer_.dir_fd_, tmp_name_.c_str(), 0);
    writer_.ring_.Submit();
  }

  void Discard() {
    RemoveTemporary();
    --writer_.in_flight_;
    delete this;
  }

  void Report(const absl::Status& status) {
    // Copies first: `status` may be our own status_, about to be freed.
    const absl::Status result = status;
    CommitCallback done = std::move(done_);
    --writer_.in_flight_;
    delete this;
    if (done) done(result);
  }

  SpoolWriter& writer_;
  const base::QueueId id_;
  char preamble_[kPreambleSize] = {};
  std::string tmp_name_;
  std::string final_name_;
  bool file_mode_ = false;
  int fd_ = -1;
  int ops_ = 0;  // operations in flight that reference this object
  uint64_t offset_ = 0;
  uint64_t body_size_ = 0;
  uint64_t record_length_ = 0;  // segment mode, from Commit
  uint32_t recipients_ = 0;
  uint32_t crc_ = 0;
  std::vector<iovec> pending_;
  std::vector<uint16_t> pending_buffers_;
  size_t pending_bytes_ = 0;
  size_t held_buffers_ = 0;  // receive buffers referenced by pending or in-flight writes
  std::vector<std::unique_ptr<Page>> pages_;  // copies pending since the last flush
  Page* tail_ = nullptr;                      // the page AppendCopy fills, if any
  std::vector<std::unique_ptr<std::string>> owned_;
  std::string trailer_;
  bool committing_ = false;
  bool chain_started_ = false;
  bool renamed_ = false;
  bool aborted_ = false;
  bool in_dir_sync_ = false;
  bool created_ = false;
  absl::Status status_;
  CommitCallback done_;
  io::MemberCompletion<Message, &Message::OnOpen> open_done_{this};
  io::MemberCompletion<Message, &Message::OnSync> sync_done_{this};
  io::MemberCompletion<Message, &Message::OnRename> rename_done_{this};
};

SpoolWriter::SpoolWriter(io::Loop& ring, io::BufferRing& buffers, int dir_fd,
                         std::function<base::QueueId()> new_id)
    : ring_(ring), buffers_(buffers), dir_fd_(dir_fd), new_id_(std::move(new_id)) {}

SpoolWriter::~SpoolWriter() {
  if (segment_fd_ >= 0) close(segment_fd_);
}

SpoolWriter::Message* SpoolWriter::Begin(base::QueueId id) {
  ++in_flight_;
  return new Message(*this, id);
}

void SpoolWriter::Append(Message* m, const char* data, size_t size, uint16_t buffer_id) {
  m->Append(data, size, buffer_id);
}

void SpoolWriter::AppendOwned(Message* m, std::string bytes) { m->AppendOwned(std::move(bytes)); }

void SpoolWriter::AppendCopy(Message* m, const char* data, size_t size) {
  m->AppendCopy(data, size);
}

size_t SpoolWriter::HeldBuffers(const Message* m) const { return m->held_buffers(); }

void SpoolWriter::Commit(Message* m, Envelope envelope, CommitCallback done) {
  m->Commit(std::move(envelope), std::move(done));
}

void SpoolWriter::Abort(Message* m) { m->Abort(); }

void SpoolWriter::Enqueue(Message* m) {
  if (!open_batch_) open_batch_ = std::make_unique<Batch>();
  open_batch_->messages.push_back(m);
  open_batch_->iov.insert(open_batch_->iov.end(), m->pending().begin(), m->pending().end());
  open_batch_->bytes += m->pending_bytes();
}

void SpoolWriter::Flush() {
  StartBatch();
  StartDirSync();
}

void SpoolWriter::OpenSegment() {
  segment_opening_ = true;
  opening_name_ = SegmentFileName(new_id_());
  ring_.Openat(&segment_open_done_, dir_fd_, opening_name_.c_str(),
               O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

void SpoolWriter::OnSegmentOpen(int result, uint32_t) {
  segment_opening_ = false;
  if (result < 0) {
    // Nothing can be committed without a segment: fail this turn's records
    // (451 to their clients) and try a fresh segment next time.
    std::unique_ptr<Batch> batch = std::move(open_batch_);
    const absl::Status status = IoError("open spool segment", result);
    if (batch) {
      for (Message* m : batch->messages) m->BatchDone(status, 0);
    }
    return;
  }
  if (segment_fd_ >= 0) ring_.Close(nullptr, segment_fd_);
  segment_fd_ = result;
  segment_name_ = opening_name_;
  segment_size_ = 0;
  segment_needs_dir_sync_ = true;  // its name must be durable too
  StartBatch();
}

void SpoolWriter::StartBatch() {
  if (flushing_batch_ || !open_batch_ || open_batch_->messages.empty()) return;
  if (segment_fd_ < 0 || segment_size_ >= kSegmentBytes) {
    if (!segment_opening_) OpenSegment();
    return;  // OnSegmentOpen starts it
  }
  flushing_batch_ = std::move(open_batch_);
  Batch& b = *flushing_batch_;
  b.offset = segment_size_;
  segment_size_ += b.bytes;
  ++segment_flushes_;
  b.started_us = base::MonotonicMicros();
  // writev(s) -> fdatasync [-> directory fsync], linked: each runs only if
  // everything before it succeeded in full.
  uint64_t offset = b.offset;
  for (size_t i = 0; i < b.iov.size(); i += kIovMax) {
    const size_t n = std::min(kIovMax, b.iov.size() - i);
    uint64_t bytes = 0;
    for (size_t k = i; k < i + n; ++k) bytes += b.iov[k].iov_len;
    ring_.Writev(&batch_op_done_, segment_fd_, &b.iov[i], static_cast<unsigned>(n), offset,
                 io::kLinked);
    offset += bytes;
    ++b.ops;
  }
  ring_.Fdatasync(&batch_op_done_, segment_fd_, io::Op{.link = segment_needs_dir_sync_});
  ++b.ops;
  if (segment_needs_dir_sync_) {
    ring_.Fsync(&batch_op_done_, dir_fd_);
    ++b.ops;
    segment_needs_dir_sync_ = false;
  }
}

void SpoolWriter::OnBatchOp(int result, uint32_t) {
  SLUICE_CHECK(flushing_batch_ != nullptr);
  Batch& b = *flushing_batch_;
  if (result < 0 && b.status.ok()) b.status = IoError("spool segment write", result);
  // Short writes are not resubmitted inside a chain; they fail the batch.
  if (--b.ops == 0) FinishBatch();
}

void SpoolWriter::FinishBatch() {
  std::unique_ptr<Batch> batch = std::move(flushing_batch_);
  if (batch->status.ok()) {
    const uint64_t now_us = base::MonotonicMicros();
    commit_latency_.Record(now_us - std::min(now_us, batch->started_us));
    bytes_committed_ += batch->bytes;
  } else {
    // Take the records back out, so none of them is delivered unasked
    // (their clients get 451 and send again), and move to a new segment.
    if (const int rc = ring_.Truncate(segment_fd_, batch->offset); rc < 0) {
      const int err = -rc;
      SLUICE_LOG(kError, "spool.truncate_failed", "cannot truncate a segment",
                 {{"segment", segment_name_}, {"error", std::strerror(err)}});
    }
    ring_.Close(nullptr, segment_fd_);
    segment_fd_ = -1;
    if (batch->offset == 0) {
      // The segment never got a record: remove it rather than leave an
      // empty file behind for every failed commit on a full disk. The
      // kernel copies the name at submission, so submit now.
      ring_.Unlinkat(nullptr, dir_fd_, segment_name_.c_str(), 0);
      ring_.Submit();
      segment_name_.clear();
    }
  }
  uint64_t offset = batch->offset;
  for (Message* m : batch->messages) {
    const uint64_t length = m->record_length();
    m->BatchDone(batch->status, offset);
    offset += length;
  }
  StartBatch();  // records that arrived meanwhile
}

void SpoolWriter::StartDirSync() {
  if (dir_sync_in_flight_ || waiting_dir_sync_.empty()) return;
  dir_syncing_.swap(waiting_dir_sync_);
  dir_sync_in_flight_ = true;
  ring_.Fsync(&dir_sync_done_, dir_fd_);
}

void SpoolWriter::OnDirSync(int result, uint32_t) {
  dir_sync_in_flight_ = false;
  std::vector<Message*> group;
  group.swap(dir_syncing_);
  const absl::Status status =
      result < 0 ? IoError("fsync spool directory", result) : absl::OkStatus();
  for (Message* m : group) m->Durable(status);
  StartDirSync();  // whatever queued up meanwhile
}

}  // namespace sluice::spool
