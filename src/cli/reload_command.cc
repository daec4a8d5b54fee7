// `sluice reload`; see reload_command.h.
#include "reload_command.h"

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "daemon_pid.h"
#include "sluice/base/strings.h"
#include "sluice/server/config_reload.h"

namespace sluice::cli {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "sluice: reload: %s\n", message.c_str());
  return 1;
}

}  // namespace

int ReloadCommand(const std::string& spool_dir) {
  std::string why;
  const pid_t pid = DaemonPid(spool_dir, why);
  if (pid == 0) return Fail(why);
  const std::string status_path = absl::StrCat(spool_dir, "/", server::kReloadStatusFileName);
  const std::string before = ReadWholeFile(status_path);
  if (kill(pid, SIGHUP) != 0) {
    return Fail(absl::StrCat("cannot signal pid ", pid, ": ", std::strerror(errno),
                             " (run it as the daemon's user or root)"));
  }
  const std::string from = absl::StrCat(pid, " ");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kReloadWaitMs);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string now = ReadWholeFile(status_path);
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
