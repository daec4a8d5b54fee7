// The folder checks of `sluice check-config`; see path_check.h.
#include "path_check.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sluice::cli {
namespace {

// May `user` create and remove entries in a folder with these attributes?
bool CanWriteFolder(const struct stat& st, const ServiceUser& user) {
  if (user.uid == 0) return true;
  constexpr mode_t kUser = S_IWUSR | S_IXUSR;
  constexpr mode_t kGroup = S_IWGRP | S_IXGRP;
  constexpr mode_t kOther = S_IWOTH | S_IXOTH;
  if (st.st_uid == user.uid) return (st.st_mode & kUser) == kUser;
  for (unsigned gid : user.gids) {
    if (st.st_gid == gid) return (st.st_mode & kGroup) == kGroup;
  }
  return (st.st_mode & kOther) == kOther;
}

std::string Parent(const std::string& path) {
  const size_t slash = path.find_last_of('/', path.size() > 1 ? path.size() - 2 : 0);
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// "" when `dir` is fine for `user`, else the problem.
std::string CheckFolder(const std::string& dir, const ServiceUser& user) {
  struct stat st;
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return "exists but is not a folder";
    if (!CanWriteFolder(st, user)) {
      return absl::StrCat("is not writable by ", user.name, " (owner ", st.st_uid, ", group ",
                          st.st_gid, ", mode ", absl::StrFormat("%04o", st.st_mode & 07777), ")");
    }
    return "";
  }
  if (errno != ENOENT) return absl::StrCat("cannot be examined: ", std::strerror(errno));
  // Missing: serve creates it (and the folders above it) if the nearest
  // existing ancestor lets the user.
  std::string up = dir;
  do {
    up = Parent(up);
  } while (stat(up.c_str(), &st) != 0 && errno == ENOENT && up != "/" && up != ".");
  if (stat(up.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || !CanWriteFolder(st, user)) {
    return absl::StrCat("does not exist, and ", user.name, " cannot create it in ", up);
  }
  return "";
}

}  // namespace

absl::StatusOr<ServiceUser> LookUpServiceUser(const std::string& name) {
  ServiceUser user;
  if (name.empty()) {
    user.uid = geteuid();
    user.gids.push_back(getegid());
    gid_t groups[256];
    const int n = getgroups(256, groups);
    for (int i = 0; i < n; ++i) user.gids.push_back(groups[i]);
    const passwd* pw = getpwuid(user.uid);
    user.name = pw != nullptr ? pw->pw_name : absl::StrCat("uid ", user.uid);
    return user;
  }
  const passwd* pw = getpwnam(name.c_str());
  if (pw == nullptr) return absl::NotFoundError(absl::StrCat("--user: no user named ", name));
  user.name = name;
  user.uid = pw->pw_uid;
  int count = 256;
  std::vector<gid_t> groups(static_cast<size_t>(count));
  if (getgrouplist(name.c_str(), pw->pw_gid, groups.data(), &count) < 0) count = 0;
  user.gids.push_back(pw->pw_gid);
  for (int i = 0; i < count; ++i) user.gids.push_back(groups[static_cast<size_t>(i)]);
  return user;
}

std::vector<std::string> CheckFolders(const config::Config& config, const ServiceUser& user) {
  std::vector<std::pair<std::string, std::string>> folders = {{"spool.dir", config.spool_dir}};
  if (!config.log_file.empty()) folders.emplace_back("log.file's folder", Parent(config.log_file));
  if (!config.pickup_dir.empty()) {
    folders.emplace_back("pickup.dir", config.pickup_dir);
    for (const char* sub : {"tmp", "new", "bad"}) {
      struct stat st;
      const std::string path = absl::StrCat(config.pickup_dir, "/", sub);
      if (stat(path.c_str(), &st) == 0)
        folders.emplace_back(absl::StrCat("pickup.dir's ", sub), path);
    }
  }
  std::vector<std::string> problems;
  for (const auto& [key, dir] : folders) {
    const std::string problem = CheckFolder(dir, user);
    if (!problem.empty()) problems.push_back(absl::StrCat(key, " ", dir, ": ", problem));
  }
  return problems;
}

}  // namespace sluice::cli
