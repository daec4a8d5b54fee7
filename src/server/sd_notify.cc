// The sd_notify(3) datagram protocol; see sluice/server/sd_notify.h.
#include "sluice/server/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"

namespace sluice::server {

SystemdNotifier SystemdNotifier::FromEnvironment() {
  SystemdNotifier n;
  const char* socket = std::getenv("NOTIFY_SOCKET");
  // Only the two forms systemd writes; anything else (a vsock address, a
  // path too long for sockaddr_un) is treated as absent.
  if (socket != nullptr && (socket[0] == '/' || socket[0] == '@') &&
      std::strlen(socket) < sizeof(sockaddr_un{}.sun_path)) {
    n.socket_path_ = socket;
  }
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  uint64_t timeout_us = 0;
  uint64_t watchdog_pid = 0;
  const bool for_us = pid == nullptr || (base::ParseUint64(pid, watchdog_pid) &&
                                         watchdog_pid == static_cast<uint64_t>(getpid()));
  if (n.active() && usec != nullptr && for_us && base::ParseUint64(usec, timeout_us)) {
    n.watchdog_interval_us_ = timeout_us / 2;
  }
  return n;
}

SystemdNotifier::SystemdNotifier(SystemdNotifier&& other) noexcept
    : socket_path_(std::move(other.socket_path_)),
      watchdog_interval_us_(other.watchdog_interval_us_),
      fd_(other.fd_) {
  other.fd_ = -1;
  other.socket_path_.clear();
}

SystemdNotifier::~SystemdNotifier() {
  if (fd_ >= 0) close(fd_);
}

absl::Status SystemdNotifier::Notify(std::string_view state) {
  if (!active()) return absl::OkStatus();
  if (fd_ < 0) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return absl::ErrnoToStatus(errno, "NOTIFY_SOCKET: socket");
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract: no NUL terminator counted
  const socklen_t length =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
  const ssize_t sent = sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
                              reinterpret_cast<const sockaddr*>(&addr), length);
  if (sent != static_cast<ssize_t>(state.size())) {
    return absl::ErrnoToStatus(errno, absl::StrCat("NOTIFY_SOCKET ", socket_path_, ": send"));
  }
  return absl::OkStatus();
}

}  // namespace sluice::server
