#include "admin_client.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

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

// The value of "key": in one of our flat JSON objects (numbers, booleans and
// strings without escapes that matter for display).
std::string Field(std::string_view object, std::string_view key) {
  const std::string needle = absl::StrCat("\"", base::Av(key), "\":");
  const size_t at = object.find(needle);
  if (at == std::string_view::npos) return "";
  std::string_view v = object.substr(at + needle.size());
  if (!v.empty() && v.front() == '"') {
    std::string out;
    for (size_t i = 1; i < v.size() && v[i] != '"'; ++i) {
      if (v[i] == '\\' && i + 1 < v.size()) ++i;
      out += v[i];
    }
    return out;
  }
  return std::string(v.substr(0, v.find_first_of(",}")));
}

std::string Age(uint64_t micros, uint64_t now, bool future) {
  if (micros == 0) return "-";
  const uint64_t d = future ? (micros > now ? micros - now : 0) : (now > micros ? now - micros : 0);
  const uint64_t s = d / 1000000;
  if (s < 120) return absl::StrCat(future ? "in " : "", s, "s");
  if (s < 7200) return absl::StrCat(future ? "in " : "", s / 60, "m");
  return absl::StrCat(future ? "in " : "", s / 3600, "h");
}

}  // namespace

absl::StatusOr<std::vector<std::string>> AdminCall(const std::string& control_dir,
                                                   const std::string& line) {
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
  std::vector<std::string> replies;
  for (const auto& [n, path] : sockets) {
    auto r = Call(path, line);
    if (r.ok()) replies.push_back(*std::move(r));
  }
  if (replies.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no running sluice answers on ", control_dir, "/<n>.sock"));
  }
  return replies;
}

int PrintDomains(const std::vector<std::string>& replies, bool json) {
  std::vector<std::string> objects;
  for (std::string_view r : replies) {
    if (r.size() < 2 || r.front() != '[') {
      std::fprintf(stderr, "sluice: unexpected reply: %.*s\n", static_cast<int>(r.size()),
                   r.data());
      return 1;
    }
    // Split the array into its flat objects.
    size_t start = std::string_view::npos;
    bool in_string = false;
    for (size_t i = 1; i < r.size(); ++i) {
      const char c = r[i];
      if (in_string) {
        if (c == '\\')
          ++i;
        else if (c == '"')
          in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{') {
        start = i;
      } else if (c == '}' && start != std::string_view::npos) {
        objects.emplace_back(r.substr(start, i + 1 - start));
        start = std::string_view::npos;
      }
    }
  }
  std::sort(objects.begin(), objects.end(), [](const std::string& a, const std::string& b) {
    return Field(a, "domain") < Field(b, "domain");
  });
  std::string out;
  if (json) {
    for (const std::string& o : objects) absl::StrAppend(&out, o, "\n");
  } else {
    const uint64_t now = base::WallMicros();
    absl::StrAppend(&out, "DOMAIN READY DEFERRED IN-FLIGHT RCPTS CONNS OLDEST NEXT-ATTEMPT\n");
    for (const std::string& o : objects) {
      uint64_t oldest = 0, next = 0;
      base::ParseUint64(Field(o, "oldest_us"), oldest);
      base::ParseUint64(Field(o, "next_attempt_us"), next);
      absl::StrAppend(&out, Field(o, "domain"), " ", Field(o, "ready"), " ", Field(o, "deferred"),
                      " ", Field(o, "in_flight"), " ", Field(o, "recipients"), " ",
                      Field(o, "connections"), " ", Age(oldest, now, false), " ",
                      Age(next, now, true));
      if (Field(o, "suspended") == "true") out += " suspended";
      if (Field(o, "rate_permille") != "1000") {
        absl::StrAppend(&out, " backoff=", Field(o, "rate_permille"), "/1000");
      }
      out += "\n";
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace sluice::cli
