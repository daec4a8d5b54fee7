// Users and salted password hashes for AUTH, and the per-address limit on
// failed attempts.
//
// The file: one "user:hash" per line; blank lines and lines starting with
// '#' are ignored. The hash is
//
//   $pbkdf2-sha256$<iterations>$<salt, base64>$<derived key, base64>
//
// PBKDF2-HMAC-SHA-256 (RFC 8018) with wolfCrypt's wc_PBKDF2, a 16-byte
// random salt and a 32-byte key. The iteration count is stored per entry, so
// it can be raised later without invalidating old entries. `sluice passwd`
// writes entries with kDefaultIterations.
//
// Cost, and why kDefaultIterations is 20,000: one PBKDF2-SHA-256 iteration
// costs about 0.75 us on the reference machine (wolfCrypt, no SHA-NI), so
// 20,000 iterations are about 15 ms of one core; 100,000 would be 76 ms and
// 600,000 (OWASP 2023) half a second. Checking runs on the shard's thread,
// which stalls every other connection of that shard meanwhile, so the count
// is a compromise between offline-guessing cost and loop latency. Two things
// keep the loop cost bounded: Verifier caches successful checks (a keyed
// SHA-256 of the password, compared in constant time), so a bulk client that
// logs in on every connection pays the PBKDF2 once per process; and
// AuthLimiter locks an address after a few failures, so one address cannot
// make the shard hash continuously.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace sluice::tls {

inline constexpr uint32_t kDefaultIterations = 20'000;
inline constexpr uint32_t kMinIterations = 1'000;
inline constexpr uint32_t kMaxIterations = 10'000'000;
inline constexpr size_t kSaltBytes = 16;
inline constexpr size_t kKeyBytes = 32;

struct PasswordHash {
  uint32_t iterations = 0;
  std::string salt;  // raw bytes
  std::string key;   // raw bytes, kKeyBytes
};

// A new "$pbkdf2-sha256$..." string with a fresh random salt.
absl::StatusOr<std::string> HashPassword(std::string_view password,
                                         uint32_t iterations = kDefaultIterations);
absl::StatusOr<PasswordHash> ParseHash(std::string_view text);
// Runs PBKDF2 (the expensive part) and compares in constant time.
bool CheckPassword(const PasswordHash& hash, std::string_view password);
// Constant-time equality for equal-length secrets (length is not secret).
bool ConstantTimeEqual(std::string_view a, std::string_view b);

class PasswordFile {
 public:
  // `source` names the file in errors ("<source>:<line>: ...").
  static absl::StatusOr<PasswordFile> Parse(std::string_view text, std::string_view source);
  static absl::StatusOr<PasswordFile> Load(const std::string& path);

  const PasswordHash* Find(std::string_view user) const;
  size_t size() const { return users_.size(); }

 private:
  absl::flat_hash_map<std::string, PasswordHash> users_;
};

// A user name may not contain ':', control characters or spaces, and is at
// most 255 bytes (SASL's field limit).
absl::Status CheckUserName(std::string_view user);

// Adds or replaces `user`'s entry in the file at `path` (created 0600 if
// missing), keeping every other line as it was. Atomic: written to a
// temporary file in the same directory, fsynced, renamed over.
absl::Status SetPassword(const std::string& path, std::string_view user, std::string_view password,
                         uint32_t iterations = kDefaultIterations);

// Checks passwords against a PasswordFile, with a cache of successful
// checks. Thread-safe (shards share one); replaced as a whole on SIGHUP.
class Verifier {
 public:
  explicit Verifier(PasswordFile file);
  // True when the user exists and the password is right. An unknown user
  // costs a PBKDF2 run too, so timing does not tell which names exist.
  bool Check(std::string_view user, std::string_view password);
  // The cheap half of Check, fit for a shard thread: true when this exact
  // (user, password) succeeded before (one HMAC); false means only Check,
  // which may run PBKDF2, can tell.
  bool CheckCached(std::string_view user, std::string_view password) const;
  // PBKDF2 runs so far (tests see the cache work).
  uint64_t slow_checks() const;

 private:
  std::string CacheKey(std::string_view user, std::string_view password) const;

  PasswordFile file_;
  PasswordHash dummy_;  // for unknown users
  std::string secret_;  // random, per process: the cache holds keyed digests
  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, std::string> cache_;  // user -> keyed digest
  uint64_t slow_checks_ = 0;
};

// Failed AUTH attempts per client address. After `max_failures` failures
// within `lock_s` seconds the address is locked for `lock_s` seconds: AUTH
// then gets 421 without a password check. Thread-safe. Bounded: at most
// kMaxTracked addresses; when full, expired entries are dropped and, if that
// frees nothing, the address is treated as locked (a flood of distinct
// addresses fails closed rather than growing memory).
class AuthLimiter {
 public:
  AuthLimiter(uint32_t max_failures, uint32_t lock_s)
      : max_failures_(max_failures), lock_ms_(uint64_t{lock_s} * 1000) {}
  bool Locked(std::string_view ip, uint64_t now_ms);
  // Records a failure; returns true when the address is now locked.
  bool Failed(std::string_view ip, uint64_t now_ms);
  void Succeeded(std::string_view ip);

  static constexpr size_t kMaxTracked = 100'000;

 private:
  struct Entry {
    uint32_t failures = 0;
    uint64_t first_ms = 0;
    uint64_t locked_until_ms = 0;
  };
  void Expire(uint64_t now_ms);

  const uint32_t max_failures_;
  const uint64_t lock_ms_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_;
};

}  // namespace sluice::tls
