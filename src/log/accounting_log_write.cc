// The accounting log's write path: a shard's buffered whole lines go to the
// O_APPEND file in one io_uring write per turn, under the file's writer token
// (log_file.h), so that no failure leaves a fragment a later record is glued
// to:
//   - a short write is completed with its rest (nothing can have been
//     appended behind it: the token is held);
//   - a failed write (ENOSPC, EIO, EFBIG...) keeps the whole lines it did
//     not write for a retry, and a partial last line that reached the file
//     is cut back out (ftruncate, made only when the file's tail is still
//     exactly those bytes). If it cannot be cut, the file is marked torn and
//     the next write, by any shard, starts with '\n': the fragment stands
//     alone on its line, never merged with a record.
// Trusts the kernel's O_APPEND (one write lands contiguously at the end).
// Limits: the buffer (limits::kLogBufferMax) while failing; the retry
// interval (kLogRetryMs).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "sluice/base/clock.h"
#include "sluice/base/limits.h"
#include "sluice/log/accounting_log.h"

namespace sluice::log {
namespace {

// EINTR/EAGAIN in a row before a write counts as failed: a regular file
// does not return them without a reason that persists.
constexpr int kInterruptedMax = 8;

// At exit, how long the last attempt waits for another shard's write to
// finish (the shards have stopped, so only a synchronous one can be left).
constexpr uint64_t kFinalWaitMs = 1000;

uint64_t Lines(std::string_view bytes) {
  return static_cast<uint64_t>(std::count(bytes.begin(), bytes.end(), '\n'));
}

}  // namespace

AccountingLog::AccountingLog(io::Loop& ring, int fd)
    : AccountingLog(ring, fd < 0 ? nullptr : LogFile::ForFd(fd)) {}

AccountingLog::AccountingLog(io::Loop& ring, std::shared_ptr<LogFile> file)
    : ring_(ring), file_(std::move(file)), fd_(file_ != nullptr ? file_->fd() : -1) {}

AccountingLog::~AccountingLog() {
  if (file_ == nullptr || writing_) return;  // in flight: the shard broke the contract
  if (!buffer_.empty()) {
    const uint64_t until = base::MonotonicMillis() + kFinalWaitMs;
    bool held = file_->TryAcquire();
    while (!held && base::MonotonicMillis() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      held = file_->TryAcquire();
    }
    if (held) {
      StartBatch();
      WriteBatchNow();
      file_->Release();
    }
  }
  Lost(buffer_lines_);
  buffer_lines_ = 0;
}

void AccountingLog::Lost(uint64_t records) {
  if (records == 0) return;
  stats_.records_lost += records;
  file_->AddLost(records);
}

bool AccountingLog::Admit(size_t lines) {
  if (file_ == nullptr) return false;
  if (buffer_.size() <= limits::kLogBufferMax) {
    buffer_lines_ += lines;
    admitted_total_ += lines;
    return true;
  }
  if (!file_->failing() && !writing_ && file_->TryAcquire()) {
    // Far behind the disk with nothing in flight: write synchronously, all
    // of it. Rare by design; it is the back-pressure.
    StartBatch();
    WriteBatchNow();
    file_->Release();
  }
  if (file_->failing() && buffer_.size() > limits::kLogBufferMax) {
    Lost(lines);
    return false;
  }
  buffer_lines_ += lines;
  admitted_total_ += lines;
  return true;
}

void AccountingLog::StartBatch() {
  in_flight_.swap(buffer_);
  buffer_.clear();
  in_flight_lines_ = buffer_lines_;
  buffer_lines_ = 0;
  in_flight_done_ = 0;
  interrupted_ = 0;
  lead_newline_ = file_->torn();
  if (lead_newline_) in_flight_.insert(in_flight_.begin(), '\n');
}

void AccountingLog::Flush() {
  if (file_ == nullptr || writing_ || buffer_.empty()) return;
  if (file_->failing() && file_->Waiting(base::MonotonicMillis())) return;
  if (!file_->TryAcquire()) return;  // another shard is writing: next turn
  StartBatch();
  writing_ = true;
  Submit();
}

void AccountingLog::Submit() {
  ring_.Write(&written_, fd_, in_flight_.data() + in_flight_done_,
              static_cast<unsigned>(in_flight_.size() - in_flight_done_),
              static_cast<uint64_t>(-1));
}

void AccountingLog::OnWritten(int result, uint32_t) {
  if (Advance(result)) {
    Submit();
    return;
  }
  // The next write waits for the end of the turn (Flush), which leaves the
  // token free for the other shards in between.
  writing_ = false;
  file_->Release();
}

void AccountingLog::WriteBatchNow() {
  int result;
  do {
    const ssize_t n =
        write(fd_, in_flight_.data() + in_flight_done_, in_flight_.size() - in_flight_done_);
    result = n >= 0 ? static_cast<int>(n) : -errno;
  } while (Advance(result));
}

bool AccountingLog::Advance(int result) {
  if (result == -EINTR || result == -EAGAIN) {
    if (++interrupted_ <= kInterruptedMax) return true;
  } else if (result > 0) {
    interrupted_ = 0;
    in_flight_done_ += static_cast<size_t>(result);
    stats_.bytes_written += static_cast<uint64_t>(result);
    if (lead_newline_) file_->set_torn(false);  // the '\n' ending the fragment is out
    if (in_flight_done_ < in_flight_.size()) {
      ++stats_.short_writes;
      return true;
    }
    stats_.records_written += in_flight_lines_;
    written_total_ += in_flight_lines_;
    in_flight_.clear();
    in_flight_done_ = 0;
    if (file_->failing()) file_->Succeeded(base::MonotonicMillis());
    return false;
  }
  Failed(result < 0 ? -result : EIO);  // 0 bytes for a non-empty write: no progress
  return false;
}

void AccountingLog::Failed(int err) {
  ++stats_.write_errors;
  // The lines that reached the file whole stay; a partial last line is cut.
  const std::string_view done(in_flight_.data(), in_flight_done_);
  const size_t last_newline = done.rfind('\n');
  const size_t whole = last_newline == std::string_view::npos ? 0 : last_newline + 1;
  const uint64_t written = Lines(done) - (lead_newline_ && whole > 0 ? 1 : 0);
  stats_.records_written += written;
  written_total_ += written;
  buffer_lines_ += in_flight_lines_ - written;
  if (in_flight_done_ > whole) CutFragment(whole, in_flight_done_ - whole);
  // The rest, whole lines, goes back in front of what was buffered since
  // (without a leading '\n' that was not written: the torn flag still says
  // the next batch needs one).
  const size_t keep_from = whole == 0 && lead_newline_ ? 1 : whole;
  buffer_.insert(0, in_flight_, keep_from);
  in_flight_.clear();
  in_flight_done_ = 0;
  file_->Failed(err, base::MonotonicMillis());
}

void AccountingLog::CutFragment(size_t at, size_t size) {
  // Only the token's holder writes, so the file ends with exactly these
  // bytes. That is checked when the file can be read back (the daemon opens
  // it write-only: through /proc/self/fd), against another process appending
  // to the same file; when it cannot be, the token is trusted.
  struct stat st;
  if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) < size) {
    ++stats_.fragments_left;
    file_->set_torn(true);
    return;
  }
  const off_t cut = st.st_size - static_cast<off_t>(size);
  bool ours = true;
  const std::string self = "/proc/self/fd/" + std::to_string(fd_);
  if (const int rfd = open(self.c_str(), O_RDONLY | O_CLOEXEC); rfd >= 0) {
    std::string tail(size, '\0');
    ours = pread(rfd, tail.data(), size, cut) == static_cast<ssize_t>(size) &&
           std::memcmp(tail.data(), in_flight_.data() + at, size) == 0;
    close(rfd);
  }
  if (ours && ftruncate(fd_, cut) == 0) {
    ++stats_.fragments_cut;
    return;
  }
  ++stats_.fragments_left;
  file_->set_torn(true);
}

}  // namespace sluice::log
