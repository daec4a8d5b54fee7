// Where a webhook is in the accounting log: the file (device and inode, so
// a rotated file is recognised under its new name) and the byte offset just
// past the last line acknowledged by the receiver (or passed over by the
// type filter). Saved in <spool>/webhook/<name>.position after every
// acknowledged batch, durably: written to a temporary file, fsynced, renamed
// over the old one, the directory fsynced. A crash leaves the old or the new
// position, never a torn one; the text carries a CRC-32C so a file damaged
// otherwise is refused (and reported) instead of trusted.
//
// Encode/Decode are pure; Load/Save touch only the one file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace sluice::webhook {

struct Position {
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t offset = 0;
  bool operator==(const Position&) const = default;
};

// "sluice-webhook-position 1 dev=<n> ino=<n> offset=<n> crc=<hex>\n"
std::string EncodePosition(const Position& p);
absl::StatusOr<Position> DecodePosition(std::string_view text);

// nullopt when the file does not exist (a webhook's first start).
absl::StatusOr<std::optional<Position>> LoadPosition(const std::string& path);
absl::Status SavePosition(const std::string& path, const Position& p);

}  // namespace sluice::webhook
