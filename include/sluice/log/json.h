// Minimal JSON writing for the accounting log: escaping of untrusted text
// (sender, HELO, reply text) so a record is always one valid line.
#pragma once

#include <string>
#include <string_view>

namespace sluice::log {

// Appends `text` as a JSON string literal, quotes included. Control bytes,
// quotes and backslashes are escaped; bytes >= 0x80 that are not valid UTF-8
// become \u00XX so the line stays valid JSON.
void AppendJsonString(std::string& out, std::string_view text);

}  // namespace sluice::log
