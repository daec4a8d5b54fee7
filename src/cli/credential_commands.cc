// `sluice passwd USER` (an AUTH password file entry, tls/password.h) and
// `sluice http-token NAME` (an HTTP admin bearer token, tls/bearer_tokens.h).
//
// Secrets never pass through argv: the password is read from standard
// input, and a new token is printed once and kept nowhere (the tokens file
// gets only its SHA-256). Limits: the password is the first line of
// standard input, read up to about 1 KiB.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "commands.h"
#include "sluice/config/config.h"
#include "sluice/tls/bearer_tokens.h"
#include "sluice/tls/password.h"
#include "usage.h"

namespace sluice::cli {

// `sluice passwd USER`: the password is the first line of standard input
// (so it never shows in `ps` or the shell history).
int RunPasswd(const Options& o) {
  if (o.positional.size() != 2) return Usage("passwd needs exactly one user name");
  config::Config c;
  if (!o.config_file.empty()) {
    if (absl::Status s = config::ApplyTomlFile(o.config_file, c); !s.ok()) {
      std::fprintf(stderr, "sluice: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  for (const auto& [flag, value] : o.overrides) {
    if (flag == "--password-file") c.auth_password_file = value;
  }
  if (c.auth_password_file.empty()) {
    return Usage("passwd needs --password-file FILE (or auth.password_file in --config)");
  }
  std::string password;
  char buf[512];
  while (password.size() < 1024 && std::fgets(buf, sizeof buf, stdin) != nullptr) {
    password += buf;
    if (!password.empty() && password.back() == '\n') break;
  }
  while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  const std::string& user = o.positional[1];
  if (absl::Status s = tls::SetPassword(c.auth_password_file, user, password); !s.ok()) {
    std::fprintf(stderr, "sluice: passwd: %s\n", std::string(s.message()).c_str());
    return absl::IsInvalidArgument(s) ? 2 : 1;
  }
  std::printf("%s: password set for %s (pbkdf2-sha256, %u iterations)\n",
              c.auth_password_file.c_str(), user.c_str(), tls::kDefaultIterations);
  return 0;
}

// `sluice http-token NAME`: a new bearer token for the HTTP admin API
// (tls/bearer_tokens.h). The token is printed once and kept nowhere; the
// tokens file gets only its SHA-256, on the line printed after it.
int RunHttpToken(const Options& o) {
  if (o.positional.size() != 2) return Usage("http-token needs exactly one token name");
  const std::string& name = o.positional[1];
  if (auto parsed = tls::BearerTokens::Parse(name + ":" + tls::TokenDigestHex(""), "NAME");
      !parsed.ok()) {
    return Usage(absl::StrCat("http-token: bad name: ", parsed.status().message()));
  }
  auto token = tls::NewBearerToken();
  if (!token.ok()) {
    std::fprintf(stderr, "sluice: http-token: %s\n", std::string(token.status().message()).c_str());
    return 1;
  }
  std::printf("token: %s\nline: %s:%s\n", token->c_str(), name.c_str(),
              tls::TokenDigestHex(*token).c_str());
  std::fprintf(stderr,
               "sluice: append the line to http.tokens_file and run 'sluice reload'; send the "
               "token as 'Authorization: Bearer TOKEN' (it is shown only now)\n");
  return 0;
}

}  // namespace sluice::cli
