#include "sluice/spool/spool_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "sluice/base/check.h"
#include "sluice/base/crc32c.h"
#include "sluice/base/strings.h"

namespace sluice::spool {
namespace {

absl::Status IoError(std::string_view what, int result) {
  return absl::Status(absl::ErrnoToStatusCode(-result),
                      absl::StrCat(base::Av(what), ": ", std::strerror(-result)));
}

}  // namespace

// One message file on its way to disk. Owns its pending iovecs; deletes
// itself once every operation it started has completed and it has reported.
class SpoolWriter::Message {
 public:
  Message(SpoolWriter& writer, base::QueueId id)
      : writer_(writer),
        id_(id),
        tmp_name_(TemporaryFileName(id)),
        final_name_(MessageFileName(id)) {
    pending_.push_back(iovec{const_cast<char*>(kPreamble.data()), kPreamble.size()});
    pending_buffers_.push_back(kNoBuffer);
    pending_bytes_ = kPreamble.size();
    io_uring_sqe* sqe = writer_.ring_.Prepare(&open_done_);
    io_uring_prep_openat(sqe, writer_.dir_fd_, tmp_name_.c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ++ops_;
  }

  void Append(const char* data, size_t size, uint16_t buffer_id) {
    if (aborted_) return;
    crc_ = base::Crc32c(crc_, data, size);
    body_size_ += size;
    if (buffer_id != kNoBuffer) writer_.buffers_.Hold(buffer_id);
    pending_.push_back(iovec{const_cast<char*>(data), size});
    pending_buffers_.push_back(buffer_id);
    pending_bytes_ += size;
    if (pending_bytes_ >= kFlushBytes || pending_.size() >= kFlushIovecs) Flush(false);
  }

  void AppendOwned(std::string bytes) {
    owned_.push_back(std::make_unique<std::string>(std::move(bytes)));
    Append(owned_.back()->data(), owned_.back()->size(), kNoBuffer);
  }

  void Commit(Envelope envelope, CommitCallback done) {
    done_ = std::move(done);
    envelope.id = id_;
    envelope.body_size = body_size_;
    envelope.body_crc = crc_;
    trailer_ = EncodeTrailer(envelope);
    pending_.push_back(iovec{trailer_.data(), trailer_.size()});
    pending_buffers_.push_back(kNoBuffer);
    pending_bytes_ += trailer_.size();
    committing_ = true;
    MaybeFinish();
  }

  void Abort() {
    aborted_ = true;
    ReleasePending();
    MaybeFinish();
  }

  // Called by the directory sync with its result.
  void Durable(const absl::Status& status) {
    in_dir_sync_ = false;
    if (!status.ok()) {
      // Complete but maybe not durable, and never acknowledged: remove it
      // rather than deliver a message the client will send again.
      io_uring_sqe* sqe = writer_.ring_.Prepare(nullptr);
      io_uring_prep_unlinkat(sqe, writer_.dir_fd_, final_name_.c_str(), 0);
      io_uring_submit(writer_.ring_.raw());
    }
    Report(status);
  }

 private:
  static constexpr uint16_t kNoBuffer = 0xffff;

  // A writev in flight: owns its iovecs and the buffer references.
  struct Write final : io::Completion {
    Message* message;
    std::vector<iovec> iov;
    std::vector<uint16_t> buffers;
    uint64_t offset;
    size_t bytes;
    bool final = false;  // the trailer write of the commit chain
    void OnComplete(int result, uint32_t flags) override { message->OnWrite(this, result, flags); }
  };

  void Flush(bool final) {
    if (fd_ < 0 || pending_.empty()) return;  // the open completes first
    auto* w = new Write();
    w->message = this;
    w->iov.swap(pending_);
    w->buffers.swap(pending_buffers_);
    w->offset = offset_;
    w->bytes = pending_bytes_;
    w->final = final;
    offset_ += pending_bytes_;
    pending_bytes_ = 0;
    io_uring_sqe* sqe = writer_.ring_.Prepare(w);
    io_uring_prep_writev(sqe, fd_, w->iov.data(), static_cast<unsigned>(w->iov.size()), w->offset);
    if (final) sqe->flags |= IOSQE_IO_LINK;
    ++ops_;
  }

  void ReleaseBuffers(const std::vector<uint16_t>& ids) {
    for (uint16_t id : ids) {
      if (id != kNoBuffer) writer_.buffers_.Release(id);
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
      if (!aborted_ && status_.ok() && !committing_ && pending_bytes_ >= kFlushBytes) Flush(false);
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
      io_uring_sqe* sqe = writer_.ring_.Prepare(w);
      io_uring_prep_writev(sqe, fd_, w->iov.data(), static_cast<unsigned>(w->iov.size()),
                           w->offset);
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

  // Drives the message forward whenever an operation completes:
  //   receiving --Commit--> chain (trailer write, fdatasync, rename)
  //   --renamed--> directory sync group --Durable--> reported
  //   any error before or in the chain: temporary file removed, reported
  //   Abort (only before Commit): temporary file removed, no report
  void MaybeFinish() {
    if (ops_ > 0 || in_dir_sync_) return;
    if (aborted_) return Discard();
    if (!committing_) return;
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
    io_uring_sqe* sync = writer_.ring_.Prepare(&sync_done_);
    io_uring_prep_fsync(sync, fd_, IORING_FSYNC_DATASYNC);
    sync->flags |= IOSQE_IO_LINK;
    io_uring_sqe* rename = writer_.ring_.Prepare(&rename_done_);
    io_uring_prep_renameat(rename, writer_.dir_fd_, tmp_name_.c_str(), writer_.dir_fd_,
                           final_name_.c_str(), 0);
    ops_ += 2;
  }

  void CloseFd() {
    if (fd_ < 0) return;
    io_uring_sqe* sqe = writer_.ring_.Prepare(nullptr);
    io_uring_prep_close(sqe, fd_);
    fd_ = -1;
  }

  // Removes our temporary file, if we created one. The kernel copies the
  // path when the SQE is submitted, so submit before this object goes away.
  void RemoveTemporary() {
    CloseFd();
    if (!created_) return;
    io_uring_sqe* sqe = writer_.ring_.Prepare(nullptr);
    io_uring_prep_unlinkat(sqe, writer_.dir_fd_, tmp_name_.c_str(), 0);
    io_uring_submit(writer_.ring_.raw());
  }

  void Discard() {
    RemoveTemporary();
    --writer_.in_flight_;
    delete this;
  }

  void Report(const absl::Status& status) {
    CommitCallback done = std::move(done_);
    --writer_.in_flight_;
    delete this;
    if (done) done(status);
  }

  SpoolWriter& writer_;
  const base::QueueId id_;
  const std::string tmp_name_;
  const std::string final_name_;
  int fd_ = -1;
  int ops_ = 0;  // operations in flight that reference this object
  uint64_t offset_ = 0;
  uint64_t body_size_ = 0;
  uint32_t crc_ = 0;
  std::vector<iovec> pending_;
  std::vector<uint16_t> pending_buffers_;
  size_t pending_bytes_ = 0;
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

SpoolWriter::SpoolWriter(io::Ring& ring, io::BufferRing& buffers, int dir_fd)
    : ring_(ring), buffers_(buffers), dir_fd_(dir_fd) {}

SpoolWriter::~SpoolWriter() = default;

SpoolWriter::Message* SpoolWriter::Begin(base::QueueId id) {
  ++in_flight_;
  return new Message(*this, id);
}

void SpoolWriter::Append(Message* m, const char* data, size_t size, uint16_t buffer_id) {
  m->Append(data, size, buffer_id);
}

void SpoolWriter::AppendOwned(Message* m, std::string bytes) { m->AppendOwned(std::move(bytes)); }

void SpoolWriter::Commit(Message* m, Envelope envelope, CommitCallback done) {
  m->Commit(std::move(envelope), std::move(done));
}

void SpoolWriter::Abort(Message* m) { m->Abort(); }

void SpoolWriter::FlushDirectory() {
  if (dir_sync_in_flight_ || waiting_dir_sync_.empty()) return;
  dir_syncing_.swap(waiting_dir_sync_);
  dir_sync_in_flight_ = true;
  io_uring_sqe* sqe = ring_.Prepare(&dir_sync_done_);
  io_uring_prep_fsync(sqe, dir_fd_, 0);
}

void SpoolWriter::OnDirSync(int result, uint32_t) {
  dir_sync_in_flight_ = false;
  std::vector<Message*> group;
  group.swap(dir_syncing_);
  const absl::Status status =
      result < 0 ? IoError("fsync spool directory", result) : absl::OkStatus();
  for (Message* m : group) m->Durable(status);
  FlushDirectory();  // whatever queued up meanwhile
}

}  // namespace sluice::spool
