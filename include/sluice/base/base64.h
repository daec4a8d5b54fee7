// Base64 (RFC 4648 section 4, the standard alphabet with '=' padding), as
// SASL (RFC 4954) and the password file use it. Decoding is strict: no
// whitespace, no line breaks, no missing or misplaced padding, and the unused
// low bits of the last group must be zero, so every byte string has exactly
// one accepted encoding.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::base {

std::string Base64Encode(std::string_view bytes);
// nullopt for anything that is not canonical base64.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace sluice::base
