#include "sluice/spool/journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "little_endian.h"
#include "sluice/base/crc32c.h"
#include "sluice/base/strings.h"

namespace sluice::spool {
namespace {

constexpr char kEntryMagic[4] = {'S', 'J', 'R', '1'};

}  // namespace

void AppendJournalEntry(std::string& out, const JournalEntry& entry) {
  char e[kJournalEntrySize];
  PutU64(e, entry.id.value());
  PutU32(e + 8, entry.recipient);
  std::memcpy(e + 12, kEntryMagic, 4);
  PutU32(e + 16, 0);
  PutU32(e + 20, base::Crc32c(0, e, 20));
  out.append(e, sizeof e);
}

std::vector<JournalEntry> ParseJournal(std::string_view bytes, size_t* valid_bytes) {
  std::vector<JournalEntry> entries;
  size_t pos = 0;
  for (; pos + kJournalEntrySize <= bytes.size(); pos += kJournalEntrySize) {
    const char* e = bytes.data() + pos;
    if (std::memcmp(e + 12, kEntryMagic, 4) != 0 || GetU32(e + 16) != 0 ||
        GetU32(e + 20) != base::Crc32c(0, e, 20)) {
      break;
    }
    entries.push_back(JournalEntry{base::QueueId(GetU64(e)), GetU32(e + 8)});
  }
  if (valid_bytes != nullptr) *valid_bytes = pos;
  return entries;
}

std::string JournalFileName(uint64_t seq) {
  return absl::StrFormat("%s%08d%s", base::Av(kJournalPrefix), seq, base::Av(kJournalSuffix));
}

uint64_t JournalSequence(std::string_view name) {
  if (name.size() <= kJournalPrefix.size() + kJournalSuffix.size() ||
      name.substr(0, kJournalPrefix.size()) != kJournalPrefix ||
      name.substr(name.size() - kJournalSuffix.size()) != kJournalSuffix) {
    return 0;
  }
  const std::string_view digits = name.substr(
      kJournalPrefix.size(), name.size() - kJournalPrefix.size() - kJournalSuffix.size());
  uint64_t seq = 0;
  for (char c : digits) {
    if (c < '0' || c > '9' || seq > (UINT64_MAX - 9) / 10) return 0;
    seq = seq * 10 + static_cast<uint64_t>(c - '0');
  }
  return seq;
}

absl::StatusOr<JournalScan> ReadJournals(const std::string& dir) {
  JournalScan scan;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return scan;
    return absl::InternalError(absl::StrCat("opendir ", dir, ": ", std::strerror(errno)));
  }
  std::vector<std::pair<uint64_t, std::string>> found;
  while (dirent* e = readdir(d)) {
    if (uint64_t seq = JournalSequence(e->d_name); seq != 0) found.emplace_back(seq, e->d_name);
  }
  closedir(d);
  std::sort(found.begin(), found.end());
  for (const auto& [seq, name] : found) {
    const std::string path = absl::StrCat(dir, "/", name);
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
    std::string bytes;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) bytes.append(buf, static_cast<size_t>(n));
    const int err = errno;
    close(fd);
    if (n < 0) return absl::InternalError(absl::StrCat("read ", path, ": ", std::strerror(err)));
    std::vector<JournalEntry> entries = ParseJournal(bytes);
    scan.entries.insert(scan.entries.end(), entries.begin(), entries.end());
    scan.files.push_back(path);
    scan.highest_sequence = std::max(scan.highest_sequence, seq);
  }
  return scan;
}

}  // namespace sluice::spool
