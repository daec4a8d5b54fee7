// A webhook's saved place in the accounting log; see
// sluice/webhook/position.h.
#include "sluice/webhook/position.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "sluice/base/crc32c.h"
#include "sluice/base/strings.h"

namespace sluice::webhook {
namespace {

constexpr std::string_view kMagic = "sluice-webhook-position 1";
constexpr size_t kMaxFileSize = 256;  // a position is ~100 bytes

absl::Status Errno(std::string_view what, const std::string& path) {
  const int err = errno;
  return absl::Status(absl::ErrnoToStatusCode(err),
                      absl::StrCat(base::Av(what), " ", path, ": ", std::strerror(err)));
}

std::string Fields(const Position& p) {
  return absl::StrCat(base::Av(kMagic), " dev=", p.dev, " ino=", p.ino, " offset=", p.offset);
}

// The value of " name=" in `text`, parsed.
bool Field(std::string_view text, std::string_view name, uint64_t& out) {
  const std::string key = absl::StrCat(" ", base::Av(name), "=");
  const size_t at = text.find(key);
  if (at == std::string_view::npos) return false;
  std::string_view value = text.substr(at + key.size());
  value = value.substr(0, value.find(' '));
  return base::ParseUint64(value, out);
}

}  // namespace

std::string EncodePosition(const Position& p) {
  const std::string fields = Fields(p);
  return absl::StrFormat("%s crc=%08x\n", fields, base::Crc32c(0, fields.data(), fields.size()));
}

absl::StatusOr<Position> DecodePosition(std::string_view text) {
  if (!text.ends_with('\n') || !text.starts_with(kMagic)) {
    return absl::DataLossError("not a webhook position (or cut short)");
  }
  text.remove_suffix(1);
  Position p;
  if (!Field(text, "dev", p.dev) || !Field(text, "ino", p.ino) ||
      !Field(text, "offset", p.offset)) {
    return absl::DataLossError("webhook position lacks dev, ino or offset");
  }
  const std::string fields = Fields(p);
  const std::string expect =
      absl::StrFormat(" crc=%08x", base::Crc32c(0, fields.data(), fields.size()));
  if (text != absl::StrCat(fields, expect)) {
    return absl::DataLossError("webhook position does not match its checksum");
  }
  return p;
}

absl::StatusOr<std::optional<Position>> LoadPosition(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    return Errno("open", path);
  }
  char buf[kMaxFileSize];
  const ssize_t n = read(fd, buf, sizeof buf);
  const int err = errno;
  close(fd);
  if (n < 0) {
    errno = err;
    return Errno("read", path);
  }
  auto p = DecodePosition(std::string_view(buf, static_cast<size_t>(n)));
  if (!p.ok()) return absl::DataLossError(absl::StrCat(path, ": ", p.status().message()));
  return *p;
}

absl::Status SavePosition(const std::string& path, const Position& p) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  const std::string text = EncodePosition(p);
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("create", tmp);
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      fdatasync(fd) != 0) {
    absl::Status s = Errno("write", tmp);
    close(fd);
    return s;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) return Errno("rename", tmp);
  const std::string dir =
      path.substr(0, path.rfind('/') == std::string::npos ? 1 : path.rfind('/'));
  const int dfd = open(path.find('/') == std::string::npos ? "." : dir.c_str(),
                       O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Errno("open", dir);
  const int synced = fsync(dfd);
  close(dfd);
  if (synced != 0) return Errno("fsync", dir);
  return absl::OkStatus();
}

}  // namespace sluice::webhook
