#include "tools/common/digest.h"

#include <cstdio>

#include "sluice/base/crc32c.h"
#include "sluice/base/strings.h"

namespace sluice::tools {

std::string DigestHeaderFor(std::string_view body) {
  char buf[96];
  const uint32_t crc = base::Crc32c(0, body.data(), body.size());
  const int n =
      std::snprintf(buf, sizeof buf, "X-Blast-Digest: crc32c=%08x; len=%zu\r\n", crc, body.size());
  return std::string(buf, static_cast<size_t>(n));
}

DigestCheck CheckDigest(std::string_view message) {
  const size_t end = message.find("\r\n\r\n");
  if (end == std::string_view::npos) return DigestCheck::kMissing;
  const std::string_view headers = message.substr(0, end + 2);
  const std::string_view body = message.substr(end + 4);
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t eol = headers.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = headers.size();
    const std::string_view line = headers.substr(pos, eol - pos);
    pos = eol + 2;
    if (!base::StartsWithIgnoreCase(line, kDigestHeaderName) ||
        line.size() <= kDigestHeaderName.size() || line[kDigestHeaderName.size()] != ':') {
      continue;
    }
    std::string_view v = line.substr(kDigestHeaderName.size() + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    if (v.substr(0, 7) != "crc32c=" || v.size() < 15) return DigestCheck::kMismatch;
    uint32_t crc = 0;
    for (char c : v.substr(7, 8)) {
      int d;
      if (c >= '0' && c <= '9')
        d = c - '0';
      else if (c >= 'a' && c <= 'f')
        d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        d = c - 'A' + 10;
      else
        return DigestCheck::kMismatch;
      crc = crc << 4 | static_cast<uint32_t>(d);
    }
    std::string_view rest = v.substr(15);
    if (rest.substr(0, 6) != "; len=") return DigestCheck::kMismatch;
    uint64_t len = 0;
    if (!base::ParseUint64(rest.substr(6), len)) return DigestCheck::kMismatch;
    if (len != body.size() || crc != base::Crc32c(0, body.data(), body.size())) {
      return DigestCheck::kMismatch;
    }
    return DigestCheck::kOk;
  }
  return DigestCheck::kMissing;
}

}  // namespace sluice::tools
