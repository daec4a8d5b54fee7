#include "sluice/smtp/sasl.h"

#include "sluice/base/base64.h"
#include "sluice/base/strings.h"

namespace sluice::smtp {

AuthArgument ParseAuthArgument(std::string_view argument) {
  AuthArgument a;
  const size_t space = argument.find(' ');
  const std::string_view mech = argument.substr(0, space);
  if (base::EqualsIgnoreCase(mech, "PLAIN")) {
    a.mechanism = SaslMechanism::kPlain;
  } else if (base::EqualsIgnoreCase(mech, "LOGIN")) {
    a.mechanism = SaslMechanism::kLogin;
  }
  if (mech.empty()) return a;
  if (space == std::string_view::npos) {
    a.syntax_ok = true;
    return a;
  }
  a.initial = argument.substr(space + 1);
  a.has_initial = true;
  // Exactly one space and one token: anything else is a syntax error.
  a.syntax_ok = !a.initial.empty() && a.initial.find(' ') == std::string_view::npos;
  return a;
}

std::optional<std::string> DecodeSaslResponse(std::string_view line) {
  if (line == "=") return std::string();
  if (line.empty()) return std::nullopt;  // "=" is how empty is said
  return base::Base64Decode(line);
}

std::optional<SaslCredentials> ParsePlain(std::string_view decoded) {
  const size_t first = decoded.find('\0');
  if (first == std::string_view::npos) return std::nullopt;
  const size_t second = decoded.find('\0', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  if (decoded.find('\0', second + 1) != std::string_view::npos) return std::nullopt;
  SaslCredentials c;
  c.authzid = std::string(decoded.substr(0, first));
  c.user = std::string(decoded.substr(first + 1, second - first - 1));
  c.password = std::string(decoded.substr(second + 1));
  if (c.user.empty() || c.password.empty()) return std::nullopt;
  if (c.authzid.size() > kSaslFieldMax || c.user.size() > kSaslFieldMax ||
      c.password.size() > kSaslFieldMax) {
    return std::nullopt;
  }
  return c;
}

}  // namespace sluice::smtp
