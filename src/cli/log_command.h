// `sluice log reopen`: what logrotate's postrotate runs. Sends SIGUSR1 to
// the daemon that holds the spool (daemon_pid.h), which reopens its
// accounting log under the configured name (server/log_file.h), then waits
// until the daemon has that name's file open: one of its descriptors
// (/proc/PID/fd) is the file now at the path. Exit 0 when it is, 1 when
// no daemon runs, the signal cannot be sent, or the daemon did not reopen
// within kLogReopenWaitMs (its stderr says why).
//
// Limits: needs permission to signal the daemon and to read its
// /proc/PID/fd (its user, or root); Linux only.
#pragma once

#include <string>

namespace sluice::cli {

inline constexpr int kLogReopenWaitMs = 5'000;

int LogReopenCommand(const std::string& spool_dir, const std::string& log_file);

}  // namespace sluice::cli
