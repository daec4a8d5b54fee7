// Bearer tokens for the HTTP admin API (docs/HTTP.md, "Authentication").
//
// A token is 32 random bytes written as 64 hex digits (256 bits); the
// tokens file (http.tokens_file) keeps only each token's SHA-256, one
//
//   name:<64 hex digits of SHA-256(token)>
//
// per line; blank lines and lines starting with '#' are ignored. Why a fast
// hash and not PBKDF2 like AUTH passwords: a password is guessable, so its
// hash must be slow; a 256-bit random token cannot be guessed however fast
// the hash, and a PBKDF2 run per request would stall the shard's loop for
// about 15 ms (tls/password.h). A stolen tokens file gives no usable token.
//
// Checking hashes the presented token once and compares the digest with
// every entry in constant time (no early exit), so timing tells neither
// whether a token is close nor which entry matched.
//
// What it trusts: nothing in the presented token; the file is the
// operator's (read whole, at most kTokensFileMax bytes).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace sluice::tls {

inline constexpr size_t kTokenBytes = 32;  // 256 bits
// A tokens file larger than this is not one (each line is under 200 bytes).
inline constexpr size_t kTokensFileMax = 1 << 20;
// Entries a file may hold: every request compares with each of them.
inline constexpr size_t kMaxTokens = 1000;

// A fresh token: kTokenBytes from getrandom(), as lower-case hex.
absl::StatusOr<std::string> NewBearerToken();
// SHA-256 of the token's bytes, as 64 lower-case hex digits.
std::string TokenDigestHex(std::string_view token);

class BearerTokens {
 public:
  // `source` names the file in errors ("<source>:<line>: ...").
  static absl::StatusOr<BearerTokens> Parse(std::string_view text, std::string_view source);
  static absl::StatusOr<BearerTokens> Load(const std::string& path);

  // The name of the entry whose digest is SHA-256(token), or nullopt.
  std::optional<std::string> Check(std::string_view token) const;
  size_t size() const { return entries_.size(); }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;  // name, raw 32-byte digest
};

// The tokens every shard checks against, re-read on SIGHUP. Thread-safe:
// shards take a shared_ptr copy under a mutex (once per request), the main
// thread's reload swaps it. A reload that fails keeps the previous set.
class BearerTokenStore {
 public:
  // `path` empty: no tokens file; configured() is false and nothing checks.
  static absl::StatusOr<std::unique_ptr<BearerTokenStore>> Create(std::string path);

  absl::Status Reload();
  bool configured() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::shared_ptr<const BearerTokens> tokens() const;

 private:
  explicit BearerTokenStore(std::string path) : path_(std::move(path)) {}

  const std::string path_;
  mutable std::mutex mu_;
  std::shared_ptr<const BearerTokens> tokens_;
};

}  // namespace sluice::tls
