#include "admin_client.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "sluice/base/clock.h"
#include "sluice/base/strings.h"

namespace sluice::cli {
namespace {

absl::StatusOr<std::string> Call(const std::string& path, const std::string& line) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return absl::InvalidArgumentError("path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(std::strerror(errno));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(err)));
  }
  const std::string request = line + "\n";
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError(absl::StrCat(path, ": write failed"));
  }
  std::string reply;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) reply.append(buf, static_cast<size_t>(n));
  close(fd);
  if (n < 0) return absl::UnavailableError(absl::StrCat(path, ": no reply"));
  while (!reply.empty() && reply.back() == '\n') reply.pop_back();
  return reply;
}

}  // namespace

namespace {

// "<control_dir>/<n>.sock" in shard order.
std::vector<std::pair<int, std::string>> ListSockets(const std::string& control_dir) {
  std::vector<std::pair<int, std::string>> sockets;
  if (DIR* d = opendir(control_dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string_view name = e->d_name;
      uint64_t n = 0;
      if (name.size() > 5 && name.substr(name.size() - 5) == ".sock" &&
          base::ParseUint64(name.substr(0, name.size() - 5), n) && n < 4096) {
        sockets.emplace_back(static_cast<int>(n), absl::StrCat(control_dir, "/", base::Av(name)));
      }
    }
    closedir(d);
  }
  std::sort(sockets.begin(), sockets.end());
  return sockets;
}

absl::Status NoDaemon(const std::string& control_dir) {
  return absl::NotFoundError(
      absl::StrCat("no running sluice answers on ", control_dir, "/<n>.sock"));
}

}  // namespace

absl::StatusOr<std::string> AdminCallAny(const std::string& control_dir, const std::string& line) {
  for (const auto& [n, path] : ListSockets(control_dir)) {
    auto r = Call(path, line);
    if (r.ok()) return r;
  }
  return NoDaemon(control_dir);
}

absl::StatusOr<std::vector<std::string>> AdminCall(const std::string& control_dir,
                                                   const std::string& line) {
  const std::vector<std::pair<int, std::string>> sockets = ListSockets(control_dir);
  std::vector<std::string> replies;
  for (const auto& [n, path] : sockets) {
    auto r = Call(path, line);
    if (r.ok()) replies.push_back(*std::move(r));
  }
  if (replies.empty()) return NoDaemon(control_dir);
  return replies;
}

absl::StatusOr<std::vector<JsonValue>> AdminCallJson(const std::string& control_dir,
                                                     const std::string& line) {
  auto replies = AdminCall(control_dir, line);
  if (!replies.ok()) return replies.status();
  return admin::ParseReplies(*replies);
}

namespace {

std::string Span(uint64_t d_us) {
  const uint64_t s = d_us / 1000000;
  if (s < 120) return absl::StrCat(s, "s");
  if (s < 7200) return absl::StrCat(s / 60, "m");
  if (s < 2 * 86400) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

}  // namespace

std::string FormatAge(uint64_t then_us, uint64_t now_us) {
  if (then_us == 0) return "-";
  return Span(now_us > then_us ? now_us - then_us : 0);
}

std::string FormatDue(uint64_t at_us, uint64_t now_us) {
  if (at_us == 0) return "-";
  if (at_us <= now_us) return "now";
  return absl::StrCat("in ", Span(at_us - now_us));
}

std::string FormatTime(uint64_t us) {
  const time_t t = static_cast<time_t>(us / 1000000);
  tm parts{};
  gmtime_r(&t, &parts);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &parts);
  return buf;
}

}  // namespace sluice::cli
