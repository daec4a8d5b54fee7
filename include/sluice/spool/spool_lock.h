// One daemon per spool: `sluice serve` holds an exclusive flock on
// <spool>/lock for its whole life, with its PID written inside, and takes
// it before it touches anything else in the spool (recovery, journals,
// control sockets). A second daemon on the same spool fails at once with
// the PID of the holder.
//
// `sluice queue` commands do not take the lock: they only read, and are
// safe while the daemon runs. The kernel drops the lock when the holder
// exits, however it exits; a stale file with a dead PID is harmless.
// Limit: flock is advisory and per host (a spool on a network file system
// shared by two hosts is not protected).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace sluice::spool {

inline constexpr const char* kLockFileName = "lock";

class SpoolLock {
 public:
  SpoolLock(SpoolLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  SpoolLock& operator=(SpoolLock&&) = delete;
  ~SpoolLock();

  // Takes the lock of spool `root` (which must exist), without waiting.
  // FailedPrecondition naming the holder's PID when another process has it.
  static absl::StatusOr<SpoolLock> Acquire(const std::string& root);

 private:
  explicit SpoolLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace sluice::spool
