// `sluice reload`; see reload_command.h.
#include "reload_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/server/config_reload.h"
#include "sluice/spool/spool_lock.h"

namespace sluice::cli {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "sluice: reload: %s\n", message.c_str());
  return 1;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The PID of the daemon holding `spool`'s lock, or 0 with `why` set.
pid_t LockHolder(const std::string& spool, std::string& why) {
  const std::string path = absl::StrCat(spool, "/", spool::kLockFileName);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    why = absl::StrCat("no daemon on spool ", spool, " (", path, ": ", std::strerror(errno), ")");
    return 0;
  }
  // A lock we can take is a lock nobody holds: the PID inside is stale.
  if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
    close(fd);
    why = absl::StrCat("no daemon on spool ", spool, " (", path, " is not locked)");
    return 0;
  }
  close(fd);
  uint64_t pid = 0;
  std::string text = ReadAll(path);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (!base::ParseUint64(text, pid) || pid == 0 || pid > INT32_MAX) {
    why = absl::StrCat(path, " holds no PID ('", text, "')");
    return 0;
  }
  return static_cast<pid_t>(pid);
}

}  // namespace

int ReloadCommand(const std::string& spool_dir) {
  std::string why;
  const pid_t pid = LockHolder(spool_dir, why);
  if (pid == 0) return Fail(why);
  const std::string status_path = absl::StrCat(spool_dir, "/", server::kReloadStatusFileName);
  const std::string before = ReadAll(status_path);
  if (kill(pid, SIGHUP) != 0) {
    return Fail(absl::StrCat("cannot signal pid ", pid, ": ", std::strerror(errno),
                             " (run it as the daemon's user or root)"));
  }
  const std::string from = absl::StrCat(pid, " ");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReloadWaitMs);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string now = ReadAll(status_path);
    if (now != before && now.rfind(from, 0) == 0) {
      // "<pid> <generation> <word>\n<line>\n"
      const size_t eol = now.find('\n');
      const std::string head = now.substr(0, eol);
      std::string line = eol == std::string::npos ? "" : now.substr(eol + 1);
      while (!line.empty() && line.back() == '\n') line.pop_back();
      const bool applied = head.size() >= 8 && head.substr(head.size() - 8) == " applied";
      std::fprintf(applied ? stdout : stderr, "sluice: %s\n", line.c_str());
      return applied ? 0 : 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Fail(absl::StrCat("pid ", pid, " did not answer within ", kReloadWaitMs / 1000,
                           "s (see its log)"));
}

}  // namespace sluice::cli
