// AUTH (RFC 4954) and its two mechanisms, PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login): parsing only. Pure, like the rest of smtp/,
// and fuzzed (fuzz/sasl_fuzzer.cc). The session drives the exchange; the
// glue checks the password.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::smtp {

enum class SaslMechanism : unsigned char { kPlain, kLogin, kUnknown };

struct AuthArgument {
  SaslMechanism mechanism = SaslMechanism::kUnknown;
  bool syntax_ok = false;    // "MECH" or "MECH SP initial-response"
  bool has_initial = false;  // an initial response was given
  std::string_view initial;  // base64 or "=" (empty), not decoded
};

// The argument of "AUTH ..." (after the verb). Mechanism names are
// case-insensitive.
AuthArgument ParseAuthArgument(std::string_view argument);

// The limit RFC 4616 puts on each field (and on the LOGIN answers here).
inline constexpr size_t kSaslFieldMax = 255;

struct SaslCredentials {
  std::string authzid;  // empty: act as `user`
  std::string user;
  std::string password;
};

// A client response line, base64 (RFC 4954 4): "=" is the empty string;
// nullopt when it is not canonical base64. "*" (cancel) is the caller's.
std::optional<std::string> DecodeSaslResponse(std::string_view line);

// PLAIN's decoded message: [authzid] NUL authcid NUL passwd. nullopt unless
// there are exactly two NULs, user and password are non-empty and every
// field is at most kSaslFieldMax bytes.
std::optional<SaslCredentials> ParsePlain(std::string_view decoded);

// LOGIN's prompts ("Username:", "Password:") as sent in 334 replies.
inline constexpr std::string_view kLoginUserPrompt = "VXNlcm5hbWU6";
inline constexpr std::string_view kLoginPasswordPrompt = "UGFzc3dvcmQ6";

}  // namespace sluice::smtp
