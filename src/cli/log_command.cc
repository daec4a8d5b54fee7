// `sluice log reopen`; see log_command.h.
#include "log_command.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "daemon_pid.h"

namespace sluice::cli {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "sluice: log reopen: %s\n", message.c_str());
  return 1;
}

// True when one of `pid`'s descriptors open for writing is the file now at `path`.
bool HasOpen(pid_t pid, const std::string& path) {
  struct stat want {};
  if (stat(path.c_str(), &want) != 0) return false;
  const std::string dir = absl::StrCat("/proc/", pid, "/fd");
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    struct stat st {};
    struct stat link {};
    const std::string fd = absl::StrCat(dir, "/", e->d_name);
    // The link's mode tells the descriptor's access: a webhook (read-only)
    // may have the new file open before the shards do.
    if (stat(fd.c_str(), &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino &&
        lstat(fd.c_str(), &link) == 0 && (link.st_mode & S_IWUSR) != 0) {
      found = true;
      break;
    }
  }
  closedir(d);
  return found;
}

}  // namespace

int LogReopenCommand(const std::string& spool_dir, const std::string& log_file) {
  if (log_file.empty()) return Fail("no accounting log is configured (log.file)");
  std::string why;
  const pid_t pid = DaemonPid(spool_dir, why);
  if (pid == 0) return Fail(why);
  if (kill(pid, SIGUSR1) != 0) {
    return Fail(absl::StrCat("cannot signal pid ", pid, ": ", std::strerror(errno),
                             " (run it as the daemon's user or root)"));
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kLogReopenWaitMs);
  while (std::chrono::steady_clock::now() < deadline) {
    if (HasOpen(pid, log_file)) {
      std::printf("sluice: pid %d writes %s\n", static_cast<int>(pid), log_file.c_str());
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Fail(absl::StrCat("pid ", pid, " did not open ", log_file, " within ",
                           kLogReopenWaitMs / 1000, "s (see its log)"));
}

}  // namespace sluice::cli
