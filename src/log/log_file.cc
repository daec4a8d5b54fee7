// The state the shards' accounting logs share per log file: the writer
// token, the torn-tail flag and the failure episode with its few stderr
// lines (see log_file.h). Only Failed/Succeeded/the destructor take the
// mutex, and only on the failure path.
#include "sluice/log/log_file.h"

#include <cstdio>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sluice/base/limits.h"
#include "sluice/diag/diag.h"

namespace sluice::log {

std::shared_ptr<LogFile> LogFile::ForFd(int fd) {
  static std::mutex mu;
  static std::map<int, std::weak_ptr<LogFile>> files;
  std::lock_guard lock(mu);
  std::weak_ptr<LogFile>& slot = files[fd];
  std::shared_ptr<LogFile> file = slot.lock();
  if (file == nullptr) {
    file = std::make_shared<LogFile>(fd);
    slot = file;
  }
  return file;
}

LogFile::~LogFile() {
  const uint64_t lost = lost_.load();
  if (lost == 0 && !failing()) return;
  Report(absl::StrFormat(
      "%u records lost since the last report%s", lost,
      failing() ? absl::StrFormat(", writes still failing (%s)", std::strerror(last_errno_)) : ""));
}

void LogFile::Report(const std::string& line) {
  SLUICE_LOG(kWarning, "log.write_failed", absl::StrCat("accounting log: ", line));
}

void LogFile::Failed(int err, uint64_t now_ms) {
  std::lock_guard lock(mu_);
  retry_at_ms_.store(now_ms + retry_ms_, std::memory_order_relaxed);
  last_errno_ = err;
  ++errors_;
  if (!failing()) {
    failing_.store(true, std::memory_order_release);
    failed_since_ms_ = now_ms;
    last_report_ms_ = now_ms;
    errors_ = 1;
    episode_lost_ = 0;
    Report(absl::StrFormat(
        "write failed (%s); whole records are kept (up to %u bytes per shard) and retried every "
        "%u ms, later ones are dropped and counted",
        std::strerror(err), limits::kLogBufferMax, retry_ms_));
    return;
  }
  if (now_ms - last_report_ms_ >= report_ms_) {
    last_report_ms_ = now_ms;
    episode_lost_ += lost_.exchange(0);
    Report(absl::StrFormat(
        "writes still failing (%s) for %u s: %u records lost so far, %u write errors",
        std::strerror(err), (now_ms - failed_since_ms_) / 1000, episode_lost_, errors_));
  }
}

void LogFile::Succeeded(uint64_t now_ms) {
  if (!failing()) return;
  std::lock_guard lock(mu_);
  if (!failing()) return;
  failing_.store(false, std::memory_order_release);
  episode_lost_ += lost_.exchange(0);
  SLUICE_LOG(kNotice, "log.write_recovered",
             absl::StrFormat("accounting log: writes recovered after %.1f s: %u records lost, "
                             "%u write errors",
                             static_cast<double>(now_ms - failed_since_ms_) / 1000.0, episode_lost_,
                             errors_));
}

}  // namespace sluice::log
