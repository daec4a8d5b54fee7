// The running daemon of a spool, for the commands that signal it
// (`sluice reload`, `sluice log reopen`): its PID is in <spool>/lock
// (spool/spool_lock.h), trusted only while that lock is held, so a stale
// PID is never signalled.
#pragma once

#include <sys/types.h>

#include <string>

namespace sluice::cli {

// The PID of the daemon holding `spool`'s lock, or 0 with `why` set.
pid_t DaemonPid(const std::string& spool, std::string& why);

// The whole of a small text file; "" when it cannot be read.
std::string ReadWholeFile(const std::string& path);

}  // namespace sluice::cli
