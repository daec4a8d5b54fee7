#include "sluice/spool/retry_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "little_endian.h"
#include "sluice/base/crc32c.h"
#include "sluice/base/strings.h"
#include "sluice/diag/diag.h"
#include "sluice/spool/durable_file.h"

namespace sluice::spool {
namespace {

constexpr char kMagic[4] = {'S', 'R', 'S', '1'};
constexpr size_t kHead = 4 + 8 + 2 + 2 + 4 + 8;  // magic .. next attempt

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::Status(absl::ErrnoToStatusCode(errno),
                      absl::StrCat(base::Av(what), " ", path, ": ", std::strerror(errno)));
}

}  // namespace

void AppendRetryEntry(std::string& out, const RetryEntry& entry) {
  const size_t start = out.size();
  out.append(kMagic, sizeof kMagic);
  PutU64(out, entry.id.value());
  PutU16(out, entry.failures);
  PutU16(out, 0);
  PutU32(out, static_cast<uint32_t>(entry.recipients.size()));
  PutU64(out, entry.next_attempt_us);
  for (uint32_t r : entry.recipients) PutU32(out, r);
  PutU32(out, base::Crc32c(0, out.data() + start, out.size() - start));
}

std::vector<RetryEntry> ParseRetryState(std::string_view bytes, size_t* valid_bytes) {
  std::vector<RetryEntry> entries;
  size_t pos = 0;
  while (bytes.size() - pos >= kHead + 4) {
    const char* e = bytes.data() + pos;
    if (std::memcmp(e, kMagic, sizeof kMagic) != 0 || GetU16(e + 14) != 0) break;
    const uint32_t count = GetU32(e + 16);
    if (count == 0 || count > kRetryEntryMaxRecipients) break;
    const size_t size = kHead + size_t{count} * 4;
    if (bytes.size() - pos < size + 4) break;
    if (GetU32(e + size) != base::Crc32c(0, e, size)) break;
    RetryEntry entry;
    entry.id = base::QueueId(GetU64(e + 4));
    entry.failures = GetU16(e + 12);
    entry.next_attempt_us = GetU64(e + 20);
    entry.recipients.reserve(count);
    for (uint32_t i = 0; i < count; ++i) entry.recipients.push_back(GetU32(e + kHead + 4 * i));
    entries.push_back(std::move(entry));
    pos += size + 4;
  }
  if (valid_bytes != nullptr) *valid_bytes = pos;
  return entries;
}

absl::Status WriteRetryState(const std::string& dir, std::string_view bytes) {
  return ReplaceFileDurably(dir, kRetryStateName, bytes);
}

absl::StatusOr<std::vector<RetryEntry>> TakeRetryState(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", base::Av(kRetryStateName));
  absl::StatusOr<std::optional<std::string>> read = ReadReplacedFile(dir, kRetryStateName);
  if (!read.ok()) return read.status();
  if (!read->has_value()) return std::vector<RetryEntry>();
  const std::string& bytes = **read;
  size_t valid = 0;
  std::vector<RetryEntry> entries = ParseRetryState(bytes, &valid);
  if (valid != bytes.size()) {
    SLUICE_LOG(
        kWarning, "spool.retry_state_damaged",
        "damaged bytes at the end of the retry state ignored",
        {{"file", path}, {"damaged_bytes", bytes.size() - valid}, {"entries", entries.size()}});
  }
  if (unlink(path.c_str()) != 0) return Errno("unlink", path);
  if (absl::Status s = SyncDirectory(dir); !s.ok()) return s;
  return entries;
}

}  // namespace sluice::spool
