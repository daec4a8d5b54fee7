// Small text helpers of the batch code (private to pickup/): trimming,
// untrusted text made printable for notes, and the address check shared by
// the manifest's sender and the recipients' rows. Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "sluice/smtp/address.h"

namespace sluice::pickup::internal {

// Without leading and trailing spaces and tabs.
std::string_view Trim(std::string_view s);
bool HasNonAscii(std::string_view s);
// Untrusted text shown in a note or a log line: printable ASCII, bounded.
std::string Shown(std::string_view s, size_t max = 80);
// Parses an address as a path ("<a@b>" or "a@b"); "" and "<>" only as a
// reverse path. Returns false and sets `why` on failure.
bool ParseAddress(std::string_view text, smtp::PathKind kind, std::string& out, bool& utf8,
                  std::string& why);

}  // namespace sluice::pickup::internal
