// See daemon_pid.h.
#include "daemon_pid.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/spool/spool_lock.h"

namespace sluice::cli {

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

pid_t DaemonPid(const std::string& spool, std::string& why) {
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
  std::string text = ReadWholeFile(path);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (!base::ParseUint64(text, pid) || pid == 0 || pid > INT32_MAX) {
    why = absl::StrCat(path, " holds no PID ('", text, "')");
    return 0;
  }
  return static_cast<pid_t>(pid);
}

}  // namespace sluice::cli
