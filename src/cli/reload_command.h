// `sluice reload`: asks the daemon that holds a spool to reload its
// configuration and reports what it answered.
//
// The daemon's PID is in <spool>/lock (spool/spool_lock.h); the command
// checks that the lock is really held (a free lock means no daemon: a stale
// PID is never signalled), sends SIGHUP, and waits for the daemon's outcome
// in <spool>/reload.status (server/config_reload.h): a new line from that
// PID. It prints the line; exit 0 when the reload was applied, 1 when it was
// refused or failed, or no daemon answered within the timeout.
//
// Trusts the status file's writer (the daemon, same spool owner). Limits:
// needs permission to signal the daemon (its user, or root), and finds the
// spool from the same configuration file and flags as `serve`.
#pragma once

#include <string>

namespace sluice::cli {

// How long `sluice reload` waits for the daemon's answer. A reload waits at
// most server::kReloadApplyTimeoutMs for its shards, plus the time to read
// the certificate and key files: 30 s is well past both.
inline constexpr int kReloadWaitMs = 30'000;

int ReloadCommand(const std::string& spool_dir);

}  // namespace sluice::cli
