// The body digest that sluice-blast writes and sluice-sink checks.
//
//   X-Blast-Digest: crc32c=<8 lowercase hex>; len=<decimal>
//
// computed over the message body: every byte after the first empty line
// (the first "\r\n\r\n") of the message as it is meant to be received, i.e.
// after SMTP dot-unstuffing. CRC-32C (hardware instruction, base::Crc32c) is
// used instead of SHA-256: it is a corruption check, not a security one, and
// it costs well under a microsecond for a 2 KiB body. The length catches
// truncation that happens to keep the CRC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::tools {

inline constexpr std::string_view kDigestHeaderName = "X-Blast-Digest";

// "X-Blast-Digest: crc32c=...; len=...\r\n" for `body`.
std::string DigestHeaderFor(std::string_view body);

enum class DigestCheck { kOk, kMismatch, kMissing };

// Checks an unstuffed message against its X-Blast-Digest header. A message
// without an empty line or without the header is kMissing; a header that
// does not parse is kMismatch.
DigestCheck CheckDigest(std::string_view message);

}  // namespace sluice::tools
