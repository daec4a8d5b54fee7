// The pickup thread's file work for single files (file_work.h).
#include "file_work.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "sluice/base/strings.h"
#include "sluice/diag/diag.h"
#include "sluice/pickup/pickup_directory.h"

namespace sluice::pickup::internal {
namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(std::string(what), " ", path, ": ", std::strerror(errno)));
}

// Reads `fd` to its end or to `out`'s size; false with errno set.
bool ReadFull(int fd, std::string& out, size_t& got) {
  got = 0;
  while (got < out.size()) {
    ssize_t n = read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

bool Takeable(std::string_view name) {
  return !name.empty() && name.front() != '.' && name.find('/') == std::string_view::npos;
}

bool IsBatchName(std::string_view name) {
  return Takeable(name) && name.size() > kBatchSuffix.size() &&
         name.substr(name.size() - kBatchSuffix.size()) == kBatchSuffix;
}

std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 255)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out;
}

PickupFiles::PickupFiles(std::string dir, std::string claimed_dir)
    : new_dir_(dir + "/new"), bad_dir_(dir + "/bad"), claimed_dir_(std::move(claimed_dir)) {
  if (const char* at = std::getenv("SLUICE_TEST_ABORT_AT")) abort_at_ = at;
}

PickupFiles::~PickupFiles() {
  if (bad_fd_ >= 0) close(bad_fd_);
}

absl::Status PickupFiles::Open() {
  bad_fd_ = open(bad_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (bad_fd_ < 0) return Errno("open", bad_dir_);
  return absl::OkStatus();
}

void PickupFiles::MaybeAbort(const char* point) const {
  if (abort_at(point)) {
    // Written at once, whatever the buffers hold: the process ends next.
    SLUICE_LOG_NOW(kError, "pickup.test_abort",
                   absl::StrCat("test hook: SLUICE_TEST_ABORT_AT=", point, ": aborting"));
    std::abort();
  }
}

bool PickupFiles::ListNew(std::vector<std::string>& names, std::string& error) const {
  DIR* d = opendir(new_dir_.c_str());
  if (d == nullptr) {
    error = std::strerror(errno);
    return false;
  }
  while (dirent* e = readdir(d)) {
    // A directory is taken only as a batch (NAME.batch); other directories
    // are left alone. Anything else that is not a regular file is claimed
    // and rejected ("not a regular file").
    if (e->d_type == DT_DIR && !IsBatchName(e->d_name)) continue;
    names.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(names.begin(), names.end());
  return true;
}

int PickupFiles::Claim(const Item& item) const {
  const std::string from = absl::StrCat(new_dir_, "/", item.name);
  return rename(from.c_str(), item.claimed_path.c_str()) == 0 ? 0 : errno;
}

std::string PickupFiles::BadName(const Item& item) const {
  std::string bad_name = item.name;
  struct stat st;
  if (fstatat(bad_fd_, bad_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 ||
      fstatat(bad_fd_, (bad_name + ".error").c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    bad_name = absl::StrCat(bad_name, ".", item.id.ToString());  // never overwrite
  }
  return bad_name;
}

absl::Status PickupFiles::Reject(const Item& item, const std::string& reason) const {
  const std::string bad_path = absl::StrCat(bad_dir_, "/", BadName(item));
  // The note first: a crash between the two steps leaves the file claimed,
  // it is processed again and the note rewritten.
  absl::Status s = WriteFileSynced(bad_path + ".error", reason + "\n");
  if (s.ok() && rename(item.claimed_path.c_str(), bad_path.c_str()) != 0) {
    s = Errno("rename to", bad_path);
  }
  if (s.ok() && fsync(bad_fd_) != 0) s = Errno("fsync", bad_dir_);
  return s;
}

absl::Status PickupFiles::WriteReport(const Item& item, const std::string& note,
                                      std::string& path) const {
  path = absl::StrCat(bad_dir_, "/", BadName(item), ".error");
  absl::Status s = WriteFileSynced(path, note);
  if (s.ok() && fsync(bad_fd_) != 0) s = Errno("fsync", bad_dir_);
  return s;
}

ReadOutcome ReadAt(int dir_fd, const std::string& name, size_t max, std::string_view what,
                   std::string_view limit, bool missing_is_invalid, std::string& out,
                   std::string& why) {
  int fd = openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ELOOP) {
      why = absl::StrCat(base::Av(what), ": a symbolic link, not a regular file");
      return ReadOutcome::kInvalid;
    }
    if (errno == ENOENT && missing_is_invalid) {
      why = absl::StrCat(base::Av(what), ": missing");
      return ReadOutcome::kInvalid;
    }
    why = absl::StrCat("open ", name, ": ", std::strerror(errno));
    return ReadOutcome::kError;
  }
  struct stat st;
  ReadOutcome outcome = ReadOutcome::kOk;
  size_t got = 0;
  if (fstat(fd, &st) != 0) {
    why = absl::StrCat("stat ", name, ": ", std::strerror(errno));
    outcome = ReadOutcome::kError;
  } else if (!S_ISREG(st.st_mode)) {
    why = absl::StrCat(base::Av(what), ": not a regular file");
    outcome = ReadOutcome::kInvalid;
  } else if (static_cast<uint64_t>(st.st_size) > max) {
    why = absl::StrCat(base::Av(what), ": file of ", st.st_size, " bytes exceeds the ",
                       base::Av(limit), " (", max, " bytes)");
    outcome = ReadOutcome::kInvalid;
  } else {
    out.resize(static_cast<size_t>(st.st_size) + 1);  // one more: a file that grew
    if (!ReadFull(fd, out, got)) {
      why = absl::StrCat("read ", name, ": ", std::strerror(errno));
      outcome = ReadOutcome::kError;
    }
  }
  close(fd);
  if (outcome != ReadOutcome::kOk) return outcome;
  out.resize(got);
  if (got > max) {
    why =
        absl::StrCat(base::Av(what), ": file exceeds the ", base::Av(limit), " (", max, " bytes)");
    return ReadOutcome::kInvalid;
  }
  return ReadOutcome::kOk;
}

namespace {

// Reads and parses one claimed file; an invalid one goes to bad/.
void TakeOne(const PickupFiles& files, const Limits& limits, Taken& t) {
  std::string bytes;
  switch (ReadAt(AT_FDCWD, t.item.claimed_path, limits.max_message_size, "file",
                 "message size limit", false, bytes, t.reason)) {
    case ReadOutcome::kInvalid:
      break;
    case ReadOutcome::kError:
      // An I/O error is not the file's fault: keep it claimed, try again.
      t.kind = Taken::Kind::kReadFailed;
      return;
    case ReadOutcome::kOk: {
      Result parsed = ParseMessage(bytes, limits);
      if (parsed.ok) {
        t.kind = Taken::Kind::kMessage;
        t.message = std::move(parsed.message);
        return;
      }
      t.reason = parsed.error.ToString();
      break;
    }
  }
  absl::Status s = files.Reject(t.item, t.reason);
  t.kind = s.ok() ? Taken::Kind::kRejected : Taken::Kind::kUnmovable;
  if (!s.ok()) t.error = std::string(s.message());
}

}  // namespace

std::vector<Taken> TakeFiles(const PickupFiles& files, std::vector<Item> items,
                             const Limits& limits, uint64_t byte_budget) {
  std::vector<Taken> out(items.size());
  uint64_t held = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    Taken& t = out[i];
    t.item = std::move(items[i]);
    if (held >= byte_budget) continue;  // kNotTried
    if (t.item.fresh) {
      // ENOENT: another process (or an earlier event of ours) took it.
      const int err = files.Claim(t.item);
      if (err != 0) {
        t.kind = err == ENOENT ? Taken::Kind::kLost : Taken::Kind::kClaimFailed;
        t.reason = std::strerror(err);
        continue;
      }
      t.item.fresh = false;
      files.MaybeAbort("after-claim");
    }
    struct stat st;
    if (lstat(t.item.claimed_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      t.kind = Taken::Kind::kBatch;  // read over several jobs, one batch at a time
      continue;
    }
    TakeOne(files, limits, t);
    if (t.kind == Taken::Kind::kMessage) held += t.message.body.size();
  }
  return out;
}

}  // namespace sluice::pickup::internal
