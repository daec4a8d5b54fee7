// The accounting log's file (log/accounting_log.h writes the records): opened
// once at start-up, its folder created if missing (so the default
// ./var/log/sluice.log works on a fresh checkout), and reopened in place on
// SIGUSR1 so that logrotate can rename the file and have the daemon start a
// new one without a restart.
//
// Reopen keeps the descriptor's number: the new file is dup2()ed over it, so
// every shard's AccountingLog, which holds the number, writes to the new file
// from its next write on with no message between threads. A write already in
// flight finishes into the old file (whole lines; O_APPEND), which logrotate
// then compresses.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice::server {

// Opens `path` for appending (mode 0640), creating it and its missing
// parent folders (mode 0750).
absl::StatusOr<int> OpenLogFile(const std::string& path);

// Opens `path` again and puts the new file under `fd`. On failure `fd`
// still writes to the old file.
absl::Status ReopenLogFile(const std::string& path, int fd);

}  // namespace sluice::server
