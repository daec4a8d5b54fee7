// What every shard's AccountingLog writing one file shares (one LogFile per
// open log descriptor in the process):
//
// - The writer token: at most one write to the file is in flight in the
//   whole process. Whoever holds it knows that nothing was appended behind
//   its own bytes, so after a short write it can complete the rest, and
//   after a failed one it can cut a partial line back out of the file
//   (ftruncate) instead of leaving a fragment for the next record to be
//   glued to. Appends stay whole lines either way; the token only makes the
//   repair exact. It costs a little parallelism: a shard that finds it taken
//   keeps its lines for its next turn.
// - Whether the file may end inside a line (a fragment that could not be
//   cut): the next write, whoever makes it, then starts with a newline.
// - The failure episode: a failed write makes every shard hold its whole
//   lines (bounded by limits::kLogBufferMax, later records dropped and
//   counted) and retry every retry_ms. stderr hears one line when writes
//   start failing, one a minute while they keep failing, one when they
//   recover and one at exit if records were lost since; never one per record.
//
// Trusts its callers to hold the token around every write and repair. Does
// not guard against another process appending to the same file (the cut is
// only made when the file's tail is still exactly our fragment).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace sluice::log {

// A failed write is retried this often: often enough that the log catches
// up within a second of space coming back, rarely enough that a full disk
// costs nothing (one write attempt per second per shard).
inline constexpr uint64_t kLogRetryMs = 1000;

// While writes keep failing, stderr gets a reminder with the counts this
// often (and a line when the failure starts and when it ends).
inline constexpr uint64_t kLogFailureReportMs = 60'000;

class LogFile {
 public:
  // The one LogFile of `fd` in this process, made on first use; it lives as
  // long as any AccountingLog holds it.
  static std::shared_ptr<LogFile> ForFd(int fd);

  explicit LogFile(int fd) : fd_(fd) {}
  ~LogFile();  // reports records lost since the last report, if any
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  int fd() const { return fd_; }

  // The writer token. TryAcquire never blocks.
  bool TryAcquire() {
    return !writer_.load(std::memory_order_relaxed) &&
           !writer_.exchange(true, std::memory_order_acquire);
  }
  void Release() { writer_.store(false, std::memory_order_release); }

  // Only by the token's holder: the file may end inside a line.
  bool torn() const { return torn_.load(std::memory_order_relaxed); }
  void set_torn(bool torn) { torn_.store(torn, std::memory_order_relaxed); }

  bool failing() const { return failing_.load(std::memory_order_acquire); }
  // Failing and the next attempt is not due yet.
  bool Waiting(uint64_t now_ms) const {
    return failing() && now_ms < retry_at_ms_.load(std::memory_order_relaxed);
  }
  // A write failed with `err` (errno): starts or continues the episode.
  void Failed(int err, uint64_t now_ms);
  // A write succeeded: ends the episode if there was one.
  void Succeeded(uint64_t now_ms);
  // Records dropped whole (buffer full while failing, or left at exit).
  void AddLost(uint64_t records) { lost_.fetch_add(records, std::memory_order_relaxed); }

  // Tests shorten the retry and reminder intervals.
  void set_retry_ms(uint64_t ms) { retry_ms_ = ms; }
  void set_report_ms(uint64_t ms) { report_ms_ = ms; }

 private:
  void Report(const std::string& line);

  const int fd_;
  std::atomic<bool> writer_{false};
  std::atomic<bool> torn_{false};
  std::atomic<bool> failing_{false};
  std::atomic<uint64_t> retry_at_ms_{0};
  std::atomic<uint64_t> lost_{0};  // since the last report
  uint64_t retry_ms_ = kLogRetryMs;
  uint64_t report_ms_ = kLogFailureReportMs;
  // The episode, under mu_ (failure path only).
  std::mutex mu_;
  uint64_t failed_since_ms_ = 0;
  uint64_t last_report_ms_ = 0;
  uint64_t errors_ = 0;        // failed writes in the episode
  uint64_t episode_lost_ = 0;  // records lost in the episode, reported so far
  int last_errno_ = 0;
};

}  // namespace sluice::log
