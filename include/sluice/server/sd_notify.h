// systemd's service notification protocol (sd_notify(3)), without libsystemd:
// one datagram of "KEY=VALUE\n" lines to the unix socket named by
// NOTIFY_SOCKET ("/path", or "@name" for the abstract namespace). A unit of
// Type=notify is "started" when READY=1 arrives; STATUS= is shown by
// `systemctl status`; STOPPING=1 says a stop is under way; WATCHDOG=1 resets
// the watchdog when the unit sets WatchdogSec= (WATCHDOG_USEC, and
// WATCHDOG_PID if it names this process).
//
// Trusts: the environment the service manager gave. Without NOTIFY_SOCKET
// every call is a no-op, so `sluice serve` in a terminal behaves as before.
// A failed send is reported to the caller and never stops the daemon.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace sluice::server {

class SystemdNotifier {
 public:
  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
  static SystemdNotifier FromEnvironment();

  SystemdNotifier() = default;
  SystemdNotifier(SystemdNotifier&& other) noexcept;
  SystemdNotifier& operator=(SystemdNotifier&&) = delete;
  SystemdNotifier(const SystemdNotifier&) = delete;
  ~SystemdNotifier();

  bool active() const { return !socket_path_.empty(); }
  // How often to send WATCHDOG=1: half the watchdog timeout, as
  // sd_watchdog_enabled(3) advises; 0 when there is no watchdog.
  uint64_t watchdog_interval_us() const { return watchdog_interval_us_; }

  // Sends `state` ("READY=1\nSTATUS=...") as one datagram.
  absl::Status Notify(std::string_view state);

 private:
  std::string socket_path_;  // as in NOTIFY_SOCKET; '@' = abstract namespace
  uint64_t watchdog_interval_us_ = 0;
  int fd_ = -1;  // opened on the first Notify()
};

}  // namespace sluice::server
